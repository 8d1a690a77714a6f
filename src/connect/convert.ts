import { create } from "@bufbuild/protobuf";
import {
  LimitsSchema,
  SessionType,
  TaskMode as ProtoTaskMode,
  TaskResultSchema,
  TaskState as ProtoTaskState,
  TaskEventSchema,
  TaskSummarySchema,
  OutputChunkSchema,
  OutputGapSchema,
  Stream,
  type OutputGap as ProtoOutputGap,
  type Limits as ProtoLimits,
  type OutputChunk as ProtoOutputChunk,
  type TaskEvent as ProtoTaskEvent,
  type TaskResult,
  type TaskSpec as ProtoTaskSpec,
  type TaskSummary,
} from "../../gen/drce/v1/task_pb.js";
import { TerminateAlgorithm, type TerminateTaskRequest } from "../../gen/drce/v1/task_service_pb.js";
import { noLimits, taskSpec, type Limits, type Session, type TaskSpec, type TaskStatus, type TerminateOptions } from "../domain/task.js";
import type { TaskView } from "../domain/view.js";
import { DrceError } from "../domain/errors.js";
import { localSession } from "../domain/spec-json.js";
import type { NodeIdentity, OutputChunk, OutputGap, TaskEvent } from "../core/api.js";
import { nodeResultToProto, placementFromProto } from "./placement-convert.js";

/** Proto TaskState from a legacy state number (the proto enum is the legacy number plus one). */
export function toProtoState(legacy: number): ProtoTaskState {
  return (legacy + 1) as ProtoTaskState;
}

/** Legacy state number from a proto TaskState. */
export function fromProtoState(state: ProtoTaskState): number {
  return state - 1;
}

function limitsFromProto(limits: ProtoLimits | undefined): Limits {
  if (limits === undefined) return noLimits;
  return {
    procMax: Number(limits.procMax),
    threadsMax: Number(limits.threadsMax),
    cpuMax: limits.cpuMax,
    iowaitMax: limits.iowaitMax,
    vramFree: limits.vramFree,
    vramFreeMin: Number(limits.vramFreeMin),
    rramFree: limits.rramFree,
    rramFreeMin: Number(limits.rramFreeMin),
    diskFree: limits.diskFree,
    diskFreeMin: Number(limits.diskFreeMin),
    iowaitUsageMax: limits.iowaitUsageMax,
    vramUsageMax: limits.vramUsageMax,
    rramUsageMax: limits.rramUsageMax,
    diskUsageMax: limits.diskUsageMax,
    diskUsageMaxBytes: Number(limits.diskUsageMaxBytes),
  };
}

/** Converts a domain Limits to proto. */
export function limitsToProto(limits: Limits): ProtoLimits {
  return create(LimitsSchema, {
    procMax: BigInt(limits.procMax),
    threadsMax: BigInt(limits.threadsMax),
    cpuMax: limits.cpuMax,
    iowaitMax: limits.iowaitMax,
    vramFree: limits.vramFree,
    vramFreeMin: BigInt(limits.vramFreeMin),
    rramFree: limits.rramFree,
    rramFreeMin: BigInt(limits.rramFreeMin),
    diskFree: limits.diskFree,
    diskFreeMin: BigInt(limits.diskFreeMin),
    iowaitUsageMax: limits.iowaitUsageMax,
    vramUsageMax: limits.vramUsageMax,
    rramUsageMax: limits.rramUsageMax,
    diskUsageMax: limits.diskUsageMax,
    diskUsageMaxBytes: BigInt(limits.diskUsageMaxBytes),
  });
}

/**
 * Converts a proto TaskSpec (with subtasks) to the domain form. Only the root's `placement` is
 * read: subtasks run on the node of their parent.
 */
export function specFromProto(spec: ProtoTaskSpec): TaskSpec {
  const placement = placementFromProto(spec.placement);
  const root = subtaskSpecFromProto(spec);
  return placement === undefined ? root : { ...root, placement };
}

function subtaskSpecFromProto(spec: ProtoTaskSpec): TaskSpec {
  const session: Session =
    spec.session?.type === SessionType.SSH
      ? {
          type: "ssh",
          host: spec.session.host,
          port: spec.session.port,
          user: spec.session.user,
          password: spec.session.password,
          privateKey: spec.session.privateKey,
          passphrase: spec.session.passphrase,
          hostFingerprint: spec.session.hostFingerprint,
        }
      : localSession(spec.session?.runAsUid, spec.session?.runAsGid);
  if (spec.session?.type === SessionType.SSH && (spec.session.runAsUid !== undefined || spec.session.runAsGid !== undefined)) {
    throw new DrceError("invalid", "run_as_uid and run_as_gid apply to local sessions only");
  }
  return taskSpec({
    id: spec.id,
    alias: spec.alias,
    command: spec.command,
    argv: [...spec.argv],
    input: spec.input,
    env: { ...spec.env },
    workDir: spec.workDir,
    shell: spec.shell,
    session,
    mode: spec.mode === ProtoTaskMode.ASYNC ? 2 : 1,
    timeoutSeconds: spec.timeoutSeconds,
    timeMaxMs: safeNumber(spec.timeMaxMs),
    cleanup: spec.cleanup,
    files: spec.files.map((f) => ({ name: f.name, data: f.data, action: f.action >>> 0 })),
    limits: limitsFromProto(spec.limits),
    subtasks: spec.subtasks.map(subtaskSpecFromProto),
    ttlMs: safeNumber(spec.ttlMs),
    openStdin: spec.openStdin,
  });
}

function safeNumber(value: bigint): number {
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
}

/**
 * Converts a core TaskView to a proto TaskResult. `identity` names the node answering; a view
 * read from another node's reply (on a manager) names that node instead, and each item of a
 * fanned-out task names its own node.
 */
export function viewToProto(view: TaskView, identity: NodeIdentity): TaskResult {
  const s = view.status;
  const own = view.origin ?? identity;
  return create(TaskResultSchema, {
    id: s.id,
    alias: s.alias,
    state: toProtoState(s.state),
    legacyState: s.state,
    errorCode: s.errorCode,
    errorMessage: s.errorMessage,
    host: own.host,
    port: own.port,
    node: own.node,
    pid: s.pid,
    exitStatus: s.exitStatus,
    signal: s.signal,
    stdout: view.stdout ?? new Uint8Array(0),
    stderr: view.stderr ?? new Uint8Array(0),
    files: (view.files ?? []).map((f) => ({ name: f.name, data: f.data, action: f.action })),
    timeMs: BigInt(view.timeMs),
    fields: { ...view.fields },
    subtasks: view.subtasks.map((sub) => viewToProto(sub, own)),
    mode: s.mode === 2 ? ProtoTaskMode.ASYNC : ProtoTaskMode.SYNC,
    startedAtMs: BigInt(s.startedAt),
    finishedAtMs: BigInt(s.finishedAt),
    stdoutSize: BigInt(s.stdoutSize),
    stderrSize: BigInt(s.stderrSize),
    stdoutTruncated: s.stdoutTruncated,
    stderrTruncated: s.stderrTruncated,
    escapedPids: [...s.escapedPids],
    parentId: s.parentId,
    stdoutMoreAvailable: view.stdoutMore === true,
    stderrMoreAvailable: view.stderrMore === true,
    ...(view.stdoutGap === undefined ? {} : { stdoutGap: gapToProto({ stream: "stdout", ...view.stdoutGap }) }),
    ...(view.stderrGap === undefined ? {} : { stderrGap: gapToProto({ stream: "stderr", ...view.stderrGap }) }),
    nodes: (view.nodes ?? []).map((item) => nodeResultToProto(item, (nodeView) => viewToProto(nodeView, nodeIdentity(item.node)))),
    placedOn: view.placedOn ?? "",
  });
}

// A node's item without an origin (built by the manager, not read from the node's reply) names
// the node only: the manager's own host and port would point at the wrong machine.
function nodeIdentity(node: string): NodeIdentity {
  return { host: "", port: 0, node };
}

/** Converts a status to a list line; `nodes` are the nodes a manager placed the task on (none on a data node). */
export function summaryToProto(s: TaskStatus, nodes: readonly string[] = []): TaskSummary {
  return create(TaskSummarySchema, {
    nodes: [...nodes],
    id: s.id,
    alias: s.alias,
    state: toProtoState(s.state),
    legacyState: s.state,
    mode: s.mode === 2 ? ProtoTaskMode.ASYNC : ProtoTaskMode.SYNC,
    startedAtMs: BigInt(s.startedAt || s.submittedAt),
    command: s.command,
    exitStatus: s.exitStatus,
    parentId: s.parentId,
    finishedAtMs: BigInt(s.finishedAt),
  });
}

/** Converts an output chunk. */
export function chunkToProto(chunk: OutputChunk): ProtoOutputChunk {
  return create(OutputChunkSchema, {
    stream: chunk.stream === "stdout" ? Stream.STDOUT : Stream.STDERR,
    offset: BigInt(chunk.offset),
    data: chunk.data,
  });
}

/** Converts a gap: bytes of a stream that were not kept. */
export function gapToProto(gap: OutputGap): ProtoOutputGap {
  return create(OutputGapSchema, {
    stream: gap.stream === "stdout" ? Stream.STDOUT : Stream.STDERR,
    offset: BigInt(gap.offset),
    bytes: BigInt(gap.bytes),
  });
}

/** Converts a task event. */
export function eventToProto(event: TaskEvent): ProtoTaskEvent {
  const s = event.status;
  return create(TaskEventSchema, {
    seq: BigInt(event.seq),
    id: s.id,
    alias: s.alias,
    state: toProtoState(s.state),
    legacyState: s.state,
    errorCode: s.errorCode,
    errorMessage: s.errorMessage,
    exitStatus: s.exitStatus,
    timeUnixMs: BigInt(event.at),
    pid: s.pid,
    timeMs: BigInt(event.timeMs),
    ...(event.node === undefined ? {} : { node: event.node }),
  });
}

/** Converts a terminate request to domain options, applying the protocol's defaults. */
export function terminateFromProto(request: TerminateTaskRequest): TerminateOptions {
  // Linux signals are 1 to 64 (0 takes the default, SIGKILL); the legacy decoder has the same range.
  if (!Number.isInteger(request.signal) || request.signal < 0 || request.signal > 64) {
    throw new DrceError("invalid", `signal: ${request.signal} is not a signal number (1 to 64, or 0 for the default)`);
  }
  return {
    alg: request.alg === TerminateAlgorithm.SIGNAL ? 2 : 1,
    delayMs: request.delayMs === 0 ? 1000 : request.delayMs,
    repeat: request.repeat === 0 ? 3 : request.repeat,
    signal: request.signal === 0 ? 9 : request.signal,
    cleanup: request.cleanup,
  };
}
