import type { NodeResult, OutputChunk, OutputGap, TaskResult } from "../../gen/drce/v1/task_pb.js";
import type { RunTaskResponse, StreamTaskOutputResponse } from "../../gen/drce/v1/task_service_pb.js";
import { streamFromProto } from "./from-proto.js";

/** The name of a task's output stream. */
export type StreamName = "stdout" | "stderr";

/** Bytes a task wrote to one of its streams, at their offset in that stream. */
export interface OutputEvent {
  /** Says this is output. */
  readonly kind: "output";
  /** The stream the bytes were written to. */
  readonly stream: StreamName;
  /** Offset of the first byte in the stream as the command wrote it (gaps count). */
  readonly offset: number;
  /** The bytes; they belong to the event and are safe to keep. */
  readonly data: Uint8Array;
  /** The node that ran the task, when the call went through a manager; empty otherwise. */
  readonly node: string;
}

/** Bytes of a stream the node did not keep (past its `--max-output-bytes`): a reader is told where and how many. */
export interface GapEvent {
  /** Says this is a gap. */
  readonly kind: "gap";
  /** The stream the bytes are missing from. */
  readonly stream: StreamName;
  /** Offset in the stream of the first missing byte. */
  readonly offset: number;
  /** How many bytes are missing. */
  readonly bytes: number;
  /** The node that ran the task, when the call went through a manager; empty otherwise. */
  readonly node: string;
}

/** The first message of a run: the node accepted the task and gave it its id. */
export interface AcceptedEvent {
  /** Says the task was accepted. */
  readonly kind: "accepted";
  /** The task as it was accepted (its id, its state). */
  readonly result: TaskResult;
}

/** The last message of a run or a followed output: the task's final result. */
export interface ResultEvent {
  /** Says the task ended. */
  readonly kind: "result";
  /** The result: state, exit status, error code, output sizes, returned files. */
  readonly result: TaskResult;
}

/** How the task fared on one node of a fan-out through a manager. */
export interface NodeResultEvent {
  /** Says this is one node's end. */
  readonly kind: "node-result";
  /** The node's name, status and result. */
  readonly nodeResult: NodeResult;
}

/** A message of {@link DrceClient.run}: accepted, then output and gaps as they come, then the result. */
export type RunEvent = AcceptedEvent | OutputEvent | GapEvent | NodeResultEvent | ResultEvent;

/** A message of {@link DrceClient.follow}: output and gaps from the offsets asked for, then the result. */
export type FollowEvent = OutputEvent | GapEvent | NodeResultEvent | ResultEvent;

/** The event a RunTask message stands for, or undefined for a message with no event (sent by a newer node). */
export function runEventFrom(message: RunTaskResponse): RunEvent | undefined {
  if (message.event.case === "accepted") return { kind: "accepted", result: message.event.value };
  return sharedEvent(message.event, message.node ?? "");
}

/** The event a StreamTaskOutput message stands for, or undefined for a message with no event. */
export function followEventFrom(message: StreamTaskOutputResponse): FollowEvent | undefined {
  return sharedEvent(message.event, message.node ?? "");
}

// The cases RunTask and StreamTaskOutput share, under the same names.
type SharedEvent = Exclude<RunTaskResponse["event"], { case: "accepted" }> | StreamTaskOutputResponse["event"];

function sharedEvent(event: SharedEvent, node: string): FollowEvent | undefined {
  switch (event.case) {
    case "output":
      return outputEvent(event.value, node);
    case "gap":
      return gapEvent(event.value, node);
    case "result":
      return { kind: "result", result: event.value };
    case "nodeResult":
      return { kind: "node-result", nodeResult: event.value };
    default:
      return undefined;
  }
}

function outputEvent(chunk: OutputChunk, node: string): OutputEvent {
  return { kind: "output", stream: streamFromProto(chunk.stream), offset: Number(chunk.offset), data: chunk.data, node };
}

function gapEvent(gap: OutputGap, node: string): GapEvent {
  return { kind: "gap", stream: streamFromProto(gap.stream), offset: Number(gap.offset), bytes: Number(gap.bytes), node };
}
