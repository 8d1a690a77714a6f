import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  RunTaskResponseSchema,
  StreamTaskOutputResponseSchema,
  type RunTaskRequest,
  type RunTaskResponse,
  type StreamTaskOutputRequest,
  type StreamTaskOutputResponse,
} from "../../gen/drce/v1/task_service_pb.js";
import type { OutputEvent, OutputStreamOptions, RunEvent, TaskCore } from "../core/api.js";
import { chunkToProto, gapToProto, specFromProto, type viewToProto } from "./convert.js";
import { nodeResultToProto } from "./placement-convert.js";

/** Builds a TaskResult from a task's view, with the node's identity. */
export type ResultOf = (view: Parameters<typeof viewToProto>[0]) => ReturnType<typeof viewToProto>;

/** The task of a request, which must name one (an id or an alias). */
export function requireTask(task: string): string {
  if (task === "") throw new ConnectError("task (an id or alias) is required", Code.InvalidArgument);
  return task;
}

/** The events of a RunTask call: its request checked, then the core's run. */
export function runTaskEvents(core: TaskCore, request: RunTaskRequest, signal: AbortSignal, options: OutputStreamOptions): AsyncIterable<RunEvent> {
  if (request.task === undefined) throw new ConnectError("task is required", Code.InvalidArgument);
  return core.run(specFromProto(request.task), signal, options);
}

/** The events of a StreamTaskOutput call: its request checked, then the core's stream from the offsets asked. */
export function streamOutputEvents(core: TaskCore, request: StreamTaskOutputRequest, signal: AbortSignal, options: OutputStreamOptions): AsyncIterable<OutputEvent> {
  const offsets = { stdout: Number(request.stdoutOffset), stderr: Number(request.stderrOffset) };
  return core.streamOutput(requireTask(request.task), offsets, request.follow, signal, options);
}

/** The RunTaskResponse of one event of a run. */
export function runTaskMessage(event: RunEvent, result: ResultOf): RunTaskResponse {
  if (event.kind === "output") return create(RunTaskResponseSchema, { event: { case: "output", value: chunkToProto(event.chunk) }, ...(event.node === undefined ? {} : { node: event.node }) });
  if (event.kind === "gap") return create(RunTaskResponseSchema, { event: { case: "gap", value: gapToProto(event.gap) }, ...(event.node === undefined ? {} : { node: event.node }) });
  if (event.kind === "node-result") return create(RunTaskResponseSchema, { event: { case: "nodeResult", value: nodeResultToProto(event.result, result) }, node: event.result.node });
  return create(RunTaskResponseSchema, { event: { case: event.kind, value: result(event.view) } });
}

/** The StreamTaskOutputResponse of one event of an output stream. */
export function streamOutputMessage(event: OutputEvent, result: ResultOf): StreamTaskOutputResponse {
  if (event.kind === "output") return create(StreamTaskOutputResponseSchema, { event: { case: "output", value: chunkToProto(event.chunk) }, ...(event.node === undefined ? {} : { node: event.node }) });
  if (event.kind === "gap") return create(StreamTaskOutputResponseSchema, { event: { case: "gap", value: gapToProto(event.gap) }, ...(event.node === undefined ? {} : { node: event.node }) });
  if (event.kind === "node-result") return create(StreamTaskOutputResponseSchema, { event: { case: "nodeResult", value: nodeResultToProto(event.result, result) }, node: event.result.node });
  return create(StreamTaskOutputResponseSchema, { event: { case: "result", value: result(event.view) } });
}
