import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  DeleteTaskResponseSchema,
  FetchTaskResponseSchema,
  GetTaskResponseSchema,
  ListTasksResponseSchema,
  SendTaskInputResponseSchema,
  SubmitTaskResponseSchema,
  TaskService,
  TerminateTaskResponseSchema,
  WatchTaskEventsResponseSchema,
  type SendTaskInputRequest,
} from "../../gen/drce/v1/task_service_pb.js";
import type { NodeIdentity, OutputStreamOptions, TaskCore } from "../core/api.js";
import { eventToProto, fromProtoState, specFromProto, summaryToProto, terminateFromProto, viewToProto } from "./convert.js";
import { requireTask, runTaskEvents, runTaskMessage, streamOutputEvents, streamOutputMessage } from "./output-messages.js";
import { toConnectError } from "./errors.js";
import { receiveTaskInput } from "./task-input.js";

/** Options of {@link createTaskHandler}. */
export interface TaskHandlerOptions {
  readonly core: TaskCore;
  readonly identity: NodeIdentity;
  /**
   * Milliseconds a SendTaskInput call may take to send its first message (the one naming
   * the task); the node passes its request-body bound. Default 300000.
   */
  readonly firstInputMs?: number;
}


/**
 * Wraps a handler body so every failure is mapped once to a ConnectError.
 */
async function mapped<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    throw toConnectError(error);
  }
}

async function* mappedStream<T>(body: () => AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* body();
  } catch (error) {
    throw toConnectError(error);
  }
}

/** The Connect implementation of TaskService: thin translation over the core. */
// Each message is serialized before the stream asks the core for the next event, so the
// core may read output into buffers it reuses.
const lent: OutputStreamOptions = { lendBuffers: true };

export function createTaskHandler({ core, identity, firstInputMs = 300_000 }: TaskHandlerOptions): ServiceImpl<typeof TaskService> {
  const result = (view: Parameters<typeof viewToProto>[0]) => viewToProto(view, identity);
  return {
    submitTask: (request, context) =>
      mapped(async () => {
        if (request.task === undefined) throw new ConnectError("task is required", Code.InvalidArgument);
        const outcome = await core.submit(specFromProto(request.task), context.signal);
        return create(SubmitTaskResponseSchema, { result: result(outcome.view), existing: outcome.existing });
      }),
    getTask: (request) =>
      mapped(async () => create(GetTaskResponseSchema, { result: result(await core.check(requireTask(request.task), request.extended)) })),
    terminateTask: (request) =>
      mapped(async () =>
        create(TerminateTaskResponseSchema, { result: result(await core.terminate(requireTask(request.task), terminateFromProto(request))) }),
      ),
    fetchTask: (request) =>
      mapped(async () => create(FetchTaskResponseSchema, { result: result(await core.fetch(requireTask(request.task), request.delete)) })),
    deleteTask: (request) =>
      mapped(async () => create(DeleteTaskResponseSchema, { result: result(await core.remove(requireTask(request.task))) })),
    listTasks: (request) =>
      mapped(async () => {
        const wanted = new Set(request.states.map(fromProtoState));
        const tasks = core.list().filter((s) => wanted.size === 0 || wanted.has(s.state));
        const placedOn = core.placedOn?.bind(core);
        return create(ListTasksResponseSchema, { tasks: tasks.map((status) => summaryToProto(status, placedOn?.(status.id))) });
      }),
    runTask: (request, context: HandlerContext) =>
      mappedStream(async function* () {
        for await (const event of runTaskEvents(core, request, context.signal, lent)) yield runTaskMessage(event, result);
      }),
    sendTaskInput: (requests: AsyncIterable<SendTaskInputRequest>, context) =>
      mapped(async () => {
        const { written } = await receiveTaskInput(requests, { core, firstMessageMs: firstInputMs, signal: context.signal });
        return create(SendTaskInputResponseSchema, { written: BigInt(written) });
      }),
    streamTaskOutput: (request, context) =>
      mappedStream(async function* () {
        for await (const event of streamOutputEvents(core, request, context.signal, lent)) yield streamOutputMessage(event, result);
      }),
    watchTaskEvents: (request, context) =>
      mappedStream(async function* () {
        const after = request.afterSeq === 0n && request.fromStart ? -1 : Number(request.afterSeq);
        for await (const event of core.watchEvents(after, request.task, context.signal)) {
          yield create(WatchTaskEventsResponseSchema, { event: eventToProto(event) });
        }
      }),
  };
}
