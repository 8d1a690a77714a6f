import {
  Stream,
  TaskMode as ProtoTaskMode,
  type OutputChunk as ProtoOutputChunk,
  type OutputGap as ProtoOutputGap,
  type TaskEvent as ProtoTaskEvent,
  type NodeResult as ProtoNodeResult,
  type TaskResult,
  type TaskSummary,
} from "../../gen/drce/v1/task_pb.js";
import type { NodeResult } from "../domain/placement.js";
import { nodeRunStatusFromProto } from "../connect/placement-convert.js";
import { TaskMode, TaskState } from "../domain/states.js";
import { taskStatus, type StreamName, type TaskStatus } from "../domain/task.js";
import type { KeptGap, TaskView } from "../domain/view.js";
import type { NodeIdentity, OutputChunk, OutputGap, TaskEvent } from "../core/api.js";

/** The domain task state of a proto TaskState (the proto enum is the legacy number plus one); unspecified reads as undefined (7). */
export function stateFromProto(state: number): TaskState {
  const legacy = state - 1;
  return Object.values(TaskState).includes(legacy as TaskState) ? (legacy as TaskState) : TaskState.Undefined;
}

/** The domain mode of a proto TaskMode; unspecified reads as sync, as the node reads it. */
export function modeFromProto(mode: ProtoTaskMode): TaskMode {
  return mode === ProtoTaskMode.ASYNC ? TaskMode.Async : TaskMode.Sync;
}

/** The stream a proto Stream names; unspecified reads as stdout. */
export function streamFromProto(stream: Stream): StreamName {
  return stream === Stream.STDERR ? "stderr" : "stdout";
}

/**
 * The domain view of a TaskResult a node answered, subtasks included, so that a manager can
 * answer for a task another node ran as if it ran it. The fields a result does not carry
 * (process group, start ticks, submission time, command line) are zero or empty; the usage
 * peaks are its TASK_* fields. The bytes are the message's own, safe to keep. A manager's reply
 * also gives the per-node items of a fanned-out task (each view keeping its node's identity) and
 * the node a one-node task was placed on.
 */
export function viewFromProto(result: TaskResult): TaskView {
  const fields = { ...result.fields };
  const usage = Object.fromEntries(Object.entries(fields).filter(([name]) => name.startsWith("TASK_")));
  const subtasks = result.subtasks.map(viewFromProto);
  const status: TaskStatus = taskStatus({
    id: result.id,
    alias: result.alias,
    parentId: result.parentId,
    subtaskIds: subtasks.map((sub) => sub.status.id),
    mode: modeFromProto(result.mode),
    state: stateFromProto(result.state),
    errorCode: result.errorCode,
    errorMessage: result.errorMessage,
    pid: result.pid,
    exitStatus: result.exitStatus,
    signal: result.signal,
    startedAt: Number(result.startedAtMs),
    finishedAt: Number(result.finishedAtMs),
    stdoutSize: Number(result.stdoutSize),
    stderrSize: Number(result.stderrSize),
    stdoutTruncated: result.stdoutTruncated,
    stderrTruncated: result.stderrTruncated,
    files: result.files.map((f) => ({ name: f.name, action: f.action })),
    escapedPids: [...result.escapedPids],
    usage,
  });
  return {
    status,
    timeMs: Number(result.timeMs),
    stdout: result.stdout,
    stderr: result.stderr,
    stdoutMore: result.stdoutMoreAvailable,
    stderrMore: result.stderrMoreAvailable,
    ...(result.stdoutGap === undefined ? {} : { stdoutGap: keptGapFromProto(result.stdoutGap) }),
    ...(result.stderrGap === undefined ? {} : { stderrGap: keptGapFromProto(result.stderrGap) }),
    files: result.files.map((f) => ({ name: f.name, data: f.data, action: f.action })),
    fields,
    subtasks,
    ...(result.nodes.length === 0 ? {} : { nodes: result.nodes.map(nodeResultFromProto) }),
    ...(result.placedOn === "" ? {} : { placedOn: result.placedOn }),
  };
}

/**
 * The domain view of a TaskResult a node answered, keeping the node's identity (its host, port
 * and name) as the view's origin: what a manager reads a node's reply with, so that the results
 * it answers name the node that ran the task, not the manager.
 */
export function nodeViewFromProto(result: TaskResult): TaskView {
  return { ...viewFromProto(result), origin: identityFromProto(result) };
}

/** One node's part of a fanned-out task, its view keeping that node's identity. */
export function nodeResultFromProto(item: ProtoNodeResult): NodeResult {
  return {
    node: item.node,
    status: nodeRunStatusFromProto(item.status),
    ...(item.result === undefined ? {} : { view: nodeViewFromProto(item.result) }),
    errorCode: item.errorCode,
    errorMessage: item.errorMessage,
  };
}

/** Where a TaskResult says its task ran: the node's host, port and name. */
export function identityFromProto(result: Pick<TaskResult, "host" | "port" | "node">): NodeIdentity {
  return { host: result.host, port: result.port, node: result.node };
}

/** The status a list line carries; the fields it does not carry are zero or empty. */
export function summaryFromProto(summary: TaskSummary): TaskStatus {
  return taskStatus({
    id: summary.id,
    alias: summary.alias,
    parentId: summary.parentId,
    mode: modeFromProto(summary.mode),
    state: stateFromProto(summary.state),
    startedAt: Number(summary.startedAtMs),
    finishedAt: Number(summary.finishedAtMs),
    command: summary.command,
    exitStatus: summary.exitStatus,
  });
}

/** A task event a node published, as the domain event; the status holds what the event carries. */
export function eventFromProto(event: ProtoTaskEvent): TaskEvent {
  return {
    seq: Number(event.seq),
    status: taskStatus({
      id: event.id,
      alias: event.alias,
      state: stateFromProto(event.state),
      errorCode: event.errorCode,
      errorMessage: event.errorMessage,
      exitStatus: event.exitStatus,
      pid: event.pid,
    }),
    timeMs: Number(event.timeMs),
    at: Number(event.timeUnixMs),
  };
}

/** An output chunk a node streamed; its bytes belong to the message, safe to keep and forward. */
export function chunkFromProto(chunk: ProtoOutputChunk): OutputChunk {
  return { stream: streamFromProto(chunk.stream), offset: Number(chunk.offset), data: chunk.data };
}

/** A gap a node streamed: bytes of a stream that were not kept. */
export function gapFromProto(gap: ProtoOutputGap): OutputGap {
  return { stream: streamFromProto(gap.stream), offset: Number(gap.offset), bytes: Number(gap.bytes) };
}

function keptGapFromProto(gap: ProtoOutputGap): KeptGap {
  return { offset: Number(gap.offset), bytes: Number(gap.bytes) };
}
