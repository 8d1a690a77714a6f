import type { NodeIdentity, TaskCore } from "../core/api.js";
import { DrceError, ErrorCode } from "../domain/errors.js";
import { TaskState } from "../domain/states.js";
import { releaseView, type KeptOutput, type TaskView } from "../domain/view.js";
import { collectLegacyBody, legacyBody, OutputPlaceholders, type LegacyBody } from "./legacy-body.js";
import {
  decodeLegacyMessage,
  encodeDecodeFailure,
  encodeErrorItem,
  encodeLegacyResponse,
  encodeTaskView,
  LegacyRequestType,
  toWireId,
  type LegacyCover,
  type LegacyWireId,
  type LegacyRequest,
  type LegacyResultItem,
} from "./legacy-codec.js";
import { decodeLegacyRoute } from "./legacy-route.js";

/** The part of a pino logger the gateway uses. */
export interface LegacyLogger {
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Options of {@link createLegacyHandler}. */
export interface LegacyHandlerOptions {
  /** The task lifecycle use cases. */
  readonly core: TaskCore;
  /** How the node names itself in result items. */
  readonly identity: NodeIdentity;
  /** Where unexpected failures are reported (never to the caller). */
  readonly logger?: LegacyLogger;
}

/** A reply to one legacy message, ready for any transport. */
export interface LegacyReply {
  /** The response JSON: an array of result items, or that array in the request's cover. */
  readonly body: string;
  /** HTTP status: 200, since protocol-level errors travel as items. */
  readonly status: number;
  /** Set when the node refused for lack of capacity: when a retry may succeed (HTTP Retry-After). */
  readonly retryAfterMs?: number;
}

/** A reply whose body is made piece by piece: a task's whole kept output is read from its file as it is sent. */
export interface LegacyStreamedReply {
  /** The response body; the transport sends it, or releases it when it cannot. */
  readonly body: LegacyBody;
  /** HTTP status: 200, since protocol-level errors travel as items. */
  readonly status: number;
  /** As {@link LegacyReply.retryAfterMs}. */
  readonly retryAfterMs?: number;
}

/** Answers legacy DRCE messages through the core; shared by the HTTP and ZeroMQ endpoints. */
export interface LegacyHandler {
  /**
   * Decodes a message body, runs it against the core and encodes the reply. Never rejects:
   * every failure becomes a result item. The signal aborts waiting for a sync task. The
   * reply is one string: for small replies (tests, tools); transports use {@link handleStreamed}.
   */
  handle(body: string | Uint8Array, signal?: AbortSignal, route?: string | Uint8Array): Promise<LegacyReply>;
  /**
   * As {@link handle}, with the reply as a body of parts: every kept output byte is in it
   * (the protocol carries whole outputs), read from the task's files as the body is sent.
   * `route` is the ZeroMQ frame after the body, when the client sent one (see legacy-route.ts):
   * a set request carries the placement it names to the core (a data node ignores it).
   */
  handleStreamed(body: string | Uint8Array, signal?: AbortSignal, route?: string | Uint8Array): Promise<LegacyStreamedReply>;
  /** A reply carrying one error item (state 6), for transport-level refusals (body too large, bad frames). */
  errorReply(errorCode: number, message: string): LegacyReply;
}

const genericInternalMessage = "internal error of the node";

/** Creates the transport-independent handler of legacy DRCE messages. */
export function createLegacyHandler(options: LegacyHandlerOptions): LegacyHandler {
  const { core, identity, logger } = options;
  if (typeof core !== "object" || core === null) throw new TypeError("createLegacyHandler: core is required");
  if (typeof identity !== "object" || identity === null) throw new TypeError("createLegacyHandler: identity is required");

  const reply = (items: LegacyResultItem[], cover?: LegacyCover, retryAfterMs?: number): LegacyReply =>
    retryAfterMs === undefined
      ? { body: encodeLegacyResponse(items, cover), status: 200 }
      : { body: encodeLegacyResponse(items, cover), status: 200, retryAfterMs };

  const errorReplyOf = (errorCode: number, message: string): LegacyReply =>
    reply([encodeErrorItem(identity, { id: 0, type: 0, errorCode, message, state: TaskState.NotSet })]);

  const requestType = (request: LegacyRequest): number => {
    switch (request.kind) {
      case "set":
        return LegacyRequestType.SetTask;
      case "check":
        return LegacyRequestType.Check;
      case "terminate":
        return LegacyRequestType.Terminate;
      case "fetch":
        return LegacyRequestType.GetData;
      case "delete":
        return LegacyRequestType.Delete;
    }
  };

  const run = async (request: LegacyRequest, signal: AbortSignal | undefined): Promise<TaskView> => {
    switch (request.kind) {
      case "set":
        return (await core.submit(request.spec, signal, "whole")).view;
      case "check":
        return core.check(request.ref, request.extended, "whole");
      case "terminate":
        try {
          return await core.terminate(request.ref, request.options);
        } catch (error) {
          // Terminating a task that has already ended answers its current state (reliability 6).
          if (error instanceof DrceError && error.kind === "precondition") return core.check(request.ref, false);
          throw error;
        }
      case "fetch":
        return core.fetch(request.ref, request.remove, "whole");
      case "delete":
        return core.remove(request.ref);
    }
  };

  /** Maps a failure of the core to the item answering it. */
  const failureItem = async (request: LegacyRequest, error: unknown): Promise<{ item: LegacyResultItem; retryAfterMs?: number }> => {
    const base = { id: request.sentId ?? request.id, type: requestType(request) };
    if (!(error instanceof DrceError)) {
      if (signalAborted(error)) {
        return { item: encodeErrorItem(identity, { ...base, errorCode: ErrorCode.InternalFo, message: "the request was aborted", state: TaskState.Undefined }) };
      }
      logger?.error({ err: error, id: base.id, type: base.type }, "legacy request failed");
      return { item: encodeErrorItem(identity, { ...base, errorCode: ErrorCode.InternalFo, message: genericInternalMessage, state: TaskState.NotSet }) };
    }
    switch (error.kind) {
      case "not-found":
        // The protocol's answer to an unknown id is state 3 with no error (legacy examples 20, 01).
        return { item: encodeErrorItem(identity, { ...base, errorCode: error.legacyCode, message: error.legacyCode === 0 ? "" : error.message, state: TaskState.NotFound }) };
      case "exhausted": {
        const item = encodeErrorItem(identity, { ...base, errorCode: error.legacyCode, message: error.message, state: TaskState.NotSet });
        return error.retryAfterMs === undefined ? { item } : { item, retryAfterMs: error.retryAfterMs };
      }
      case "precondition": {
        // E.g. deleting a running task: answer with the task as it is, carrying the error.
        if (request.kind !== "set") {
          try {
            const view = await core.check(request.ref, false);
            const item = encodeTaskView(view, view.origin ?? identity, base.type, base.id);
            return { item: { ...item, error_code: error.legacyCode, error_message: error.message } };
          } catch {
            // Fall through to a plain error item.
          }
        }
        return { item: encodeErrorItem(identity, { ...base, errorCode: error.legacyCode, message: error.message, state: TaskState.NotSet }) };
      }
      case "internal":
        logger?.error({ err: error, id: base.id, type: base.type }, "legacy request failed");
        return { item: encodeErrorItem(identity, { ...base, errorCode: error.legacyCode, message: genericInternalMessage, state: TaskState.NotSet }) };
      case "unavailable":
        logger?.warn({ err: error, id: base.id, type: base.type }, "legacy request failed: unavailable");
        return { item: encodeErrorItem(identity, { ...base, errorCode: error.legacyCode, message: error.message, state: TaskState.NotSet }) };
      case "invalid":
      case "exists":
      case "denied":
        return { item: encodeErrorItem(identity, { ...base, errorCode: error.legacyCode, message: error.message, state: TaskState.NotSet }) };
    }
  };

  const streamed = (items: LegacyResultItem[], cover: LegacyCover | undefined, placeholders: OutputPlaceholders, retryAfterMs?: number): LegacyStreamedReply => {
    const body = legacyBody(items, cover, placeholders);
    return retryAfterMs === undefined ? { body, status: 200 } : { body, status: 200, retryAfterMs };
  };

  /**
   * The items answering a view: one, naming the node that ran the task; for a task fanned out
   * by a manager, one per node in the view's order, each naming its node, and an error item for
   * a node without a result (its error code and message), never a gap.
   */
  const itemsOf = (view: TaskView, type: number, id: LegacyWireId | undefined, placeholder: (kept: KeptOutput) => string): LegacyResultItem[] => {
    // A view without node items is answered as the task itself rather than as an empty array.
    if (view.nodes === undefined || view.nodes.length === 0) return [encodeTaskView(view, view.origin ?? identity, type, id, placeholder)];
    return view.nodes.map((item) => {
      const nodeIdentity = item.view?.origin ?? { host: "", port: 0, node: item.node };
      if (item.view === undefined) {
        return encodeErrorItem(nodeIdentity, { id: id ?? toWireId(view.status.id), type, errorCode: item.errorCode, message: item.errorMessage, state: TaskState.NotSet });
      }
      const encoded = encodeTaskView(item.view, nodeIdentity, type, id, placeholder);
      // An unreachable node's last known state carries the error that says why it is not current.
      return item.errorCode === 0 ? encoded : { ...encoded, error_code: item.errorCode, error_message: item.errorMessage };
    });
  };

  const handleStreamed = async (body: string | Uint8Array, signal?: AbortSignal, route?: string | Uint8Array): Promise<LegacyStreamedReply> => {
    const placeholders = new OutputPlaceholders();
    const decoded = decodeLegacyMessage(body);
    if (!decoded.ok) return streamed([encodeDecodeFailure(identity, decoded.failure)], decoded.cover, placeholders);
    const { cover } = decoded;
    let request = decoded.request;
    let view: TaskView | undefined;
    try {
      // Only a new task is placed; every later call reaches the task by its id.
      if (request.kind === "set") {
        const placement = decodeLegacyRoute({
          ...(route === undefined ? {} : { frame: route }),
          ...(decoded.route === undefined ? {} : { field: decoded.route }),
          ...(cover === undefined ? {} : { coverTtlMs: cover.ttl }),
        });
        if (placement !== undefined) request = { ...request, spec: { ...request.spec, placement } };
      }
      view = await run(request, signal);
      // A set request without an id gets the id the core gave the task.
      const id = request.kind === "set" && request.spec.id === "" ? undefined : (request.sentId ?? request.id);
      return streamed(itemsOf(view, requestType(request), id, placeholders.placeholder), cover, placeholders);
    } catch (error) {
      // The view's outputs are open only once the reply holds them.
      if (view !== undefined) await releaseView(view);
      try {
        const { item, retryAfterMs } = await failureItem(request, error);
        return streamed([item], cover, placeholders, retryAfterMs);
      } catch (mappingError) {
        logger?.error({ err: mappingError }, "legacy error mapping failed");
        const item = encodeErrorItem(identity, { id: request.sentId ?? request.id, type: requestType(request), errorCode: ErrorCode.InternalFo, message: genericInternalMessage, state: TaskState.NotSet });
        return streamed([item], cover, placeholders);
      }
    }
  };

  return {
    handleStreamed,
    async handle(body, signal, route) {
      const answer = await handleStreamed(body, signal, route);
      try {
        const text = (await collectLegacyBody(answer.body)).toString("utf8");
        return answer.retryAfterMs === undefined ? { body: text, status: answer.status } : { body: text, status: answer.status, retryAfterMs: answer.retryAfterMs };
      } catch (error) {
        logger?.error({ err: error }, "legacy reply could not be read");
        return errorReplyOf(ErrorCode.InternalFo, genericInternalMessage);
      } finally {
        await answer.body.release();
      }
    },
    errorReply: (errorCode, message) => errorReplyOf(errorCode, message),
  };
}

function signalAborted(error: unknown): boolean {
  return error instanceof Error && (error.name === "AbortError" || (error as { code?: unknown }).code === "ABORT_ERR");
}
