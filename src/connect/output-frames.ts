import { fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createEndStreamSerialization, parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { once } from "node:events";
import type http from "node:http";
import type http2 from "node:http2";
import {
  RunTaskRequestSchema,
  RunTaskResponseSchema,
  StreamTaskOutputRequestSchema,
  StreamTaskOutputResponseSchema,
  TaskService,
  type RunTaskRequest,
  type StreamTaskOutputRequest,
} from "../../gen/drce/v1/task_service_pb.js";
import type { NodeIdentity, OutputChunk, OutputEvent, RunEvent, TaskCore } from "../core/api.js";
import { ErrorCode } from "../domain/errors.js";
import { viewToProto } from "./convert.js";
import { toConnectError } from "./errors.js";
import { checkEnums } from "./request-enums.js";
import { runTaskEvents, runTaskMessage, streamOutputEvents, streamOutputMessage, type ResultOf } from "./output-messages.js";

/** Options of {@link createOutputFramesRoute}. */
export interface OutputFramesOptions {
  /** The node's task core, which runs and streams the tasks. */
  readonly core: TaskCore;
  /** The node's identity, in every TaskResult. */
  readonly identity: NodeIdentity;
  /** Whether an Authorization header carries the node's token. */
  readonly checkToken: (authorization: string | null) => boolean;
  /** Largest request message accepted, in bytes (the node's `--max-request-bytes`). */
  readonly readMaxBytes: number;
  /** Fires when the node shuts down; every call served here ends with it. */
  readonly shutdownSignal: AbortSignal;
  /** Called when a call fails outside its RPC (a broken response stream); for the node's log. */
  readonly onHandlerError?: (method: string, error: unknown) => void;
}

/**
 * Serves one request when it is one of the calls this route answers, and says whether it did;
 * a request it leaves (`false`) was not touched, for Connect's handler to serve.
 */
export type OutputFramesRoute = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => boolean;

/** The wire of a request this route answers. */
type Wire = "connect" | "grpc";

/** One of the two methods this route answers. */
interface FramedMethod {
  readonly name: string;
  readonly input: DescMessage;
  /** Field numbers of the response's `output` member and of its `node` field. */
  readonly outputField: number;
  readonly nodeField: number;
  /** The events of a call, and the response message of any event but output. */
  readonly events: (core: TaskCore, request: never, signal: AbortSignal) => AsyncIterable<RunEvent | OutputEvent>;
  readonly encode: (event: RunEvent | OutputEvent, result: ResultOf) => Uint8Array;
}

// Each output chunk is written to the HTTP stream as it is and kept there until it is sent,
// so the core gives each chunk a buffer of its own: a lent buffer would be read into again.
const ownBuffers = { lendBuffers: false } as const;

const runTask: FramedMethod = {
  name: TaskService.method.runTask.name,
  input: RunTaskRequestSchema,
  outputField: 2,
  nodeField: 6,
  events: (core, request: RunTaskRequest, signal) => runTaskEvents(core, request, signal, ownBuffers),
  encode: (event, result) => toBinary(RunTaskResponseSchema, runTaskMessage(event as RunEvent, result)),
};

const streamTaskOutput: FramedMethod = {
  name: TaskService.method.streamTaskOutput.name,
  input: StreamTaskOutputRequestSchema,
  outputField: 1,
  nodeField: 4,
  events: (core, request: StreamTaskOutputRequest, signal) => streamOutputEvents(core, request, signal, ownBuffers),
  encode: (event, result) => toBinary(StreamTaskOutputResponseSchema, streamOutputMessage(event as OutputEvent, result)),
};

/**
 * The node's own answer to RunTask and StreamTaskOutput over Connect streaming
 * (`application/connect+proto`, HTTP/1.1 or HTTP/2) and gRPC (`application/grpc`, `+proto`,
 * HTTP/2): the bytes Connect's handler would send, written by hand so that output is never
 * copied. Each output message is a small header buffer (the envelope's 5 bytes, the field tags
 * and lengths of the response and its OutputChunk) followed by the output chunk itself,
 * written as its own buffer (one corked write of both); the other messages are encoded with
 * `toBinary`. The end of the stream is Connect's end-stream message or gRPC's trailers, with
 * the error's code, message and metadata (the legacy code in `drce-error-code`) as Connect
 * sends them. The call honours `connect-timeout-ms` and `grpc-timeout` (DeadlineExceeded),
 * ends when the caller leaves (which terminates an attached task, as before) or the node
 * shuts down, and waits for `drain` before each next message.
 *
 * Requests it leaves to Connect's handler: other methods, other content types (JSON,
 * gRPC-Web), compressed requests, gRPC over HTTP/1.1, and a wrong or missing token (so that
 * the refusal is Connect's own).
 */
export function createOutputFramesRoute(options: OutputFramesOptions): OutputFramesRoute {
  const { core, identity, checkToken, readMaxBytes, shutdownSignal } = options;
  const result: ResultOf = (view) => viewToProto(view, identity);
  const methods = new Map<string, FramedMethod>([runTask, streamTaskOutput].map((method) => [`/${TaskService.typeName}/${method.name}`, method]));
  return (req, res) => {
    const method = methods.get((req.url ?? "").split("?", 1)[0] ?? "");
    if (method === undefined || req.method !== "POST") return false;
    const wire = wireOf(req);
    if (wire === undefined || !checkToken(headerOf(req, "authorization") ?? null)) return false;
    serveCall({ core, result, readMaxBytes, shutdownSignal, method, wire, req, res }).catch((reason: unknown) => {
      // A caller that went away is not a failure of the node.
      if (ConnectError.from(reason).code === Code.Aborted) return;
      options.onHandlerError?.(`${TaskService.typeName}/${method.name}`, reason);
    });
    return true;
  };
}

/** The wire of a request this route answers, undefined for any other. */
function wireOf(req: http.IncomingMessage | http2.Http2ServerRequest): Wire | undefined {
  const type = (headerOf(req, "content-type") ?? "").split(";", 1)[0]?.trim().toLowerCase() ?? "";
  if (type === "application/connect+proto") return identityEncoding(headerOf(req, "connect-content-encoding")) ? "connect" : undefined;
  // gRPC needs trailers, which this route sends on HTTP/2 only.
  if ((type === "application/grpc" || type === "application/grpc+proto") && req.httpVersionMajor === 2) return identityEncoding(headerOf(req, "grpc-encoding")) ? "grpc" : undefined;
  return undefined;
}

function identityEncoding(value: string | undefined): boolean {
  return value === undefined || value.trim() === "" || value.trim().toLowerCase() === "identity";
}

function headerOf(req: http.IncomingMessage | http2.Http2ServerRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

interface Call {
  readonly core: TaskCore;
  readonly result: ResultOf;
  readonly readMaxBytes: number;
  readonly shutdownSignal: AbortSignal;
  readonly method: FramedMethod;
  readonly wire: Wire;
  readonly req: http.IncomingMessage | http2.Http2ServerRequest;
  readonly res: http.ServerResponse | http2.Http2ServerResponse;
}

const endStream = createEndStreamSerialization({});

/** Serves one call from its request body to the end of its stream. */
async function serveCall(call: Call): Promise<void> {
  const { req, res, wire, method } = call;
  const controller = new AbortController();
  const stop = (reason: unknown): void => void (controller.signal.aborted ? undefined : controller.abort(reason));
  // The caller leaving before the end is a cancellation: an attached task is terminated.
  const left = (): void => stop(new ConnectError("the caller went away", Code.Aborted));
  res.once("close", left);
  const shutdown = (): void => stop(new ConnectError("the node is shutting down", Code.Unavailable));
  call.shutdownSignal.addEventListener("abort", shutdown, { once: true });
  if (call.shutdownSignal.aborted) shutdown();
  const timeout = (wire === "connect" ? parseConnectTimeout : parseGrpcTimeout)(headerOf(req, wire === "connect" ? "connect-timeout-ms" : "grpc-timeout") ?? null, Number.MAX_SAFE_INTEGER);
  const deadline = timeout.timeoutMs === undefined ? undefined : setTimeout(() => stop(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeout.timeoutMs);
  const writer = createFrameWriter(res, wire, controller.signal);
  try {
    if (timeout.error !== undefined) throw timeout.error;
    const request = await readRequest(req, method.input, call.readMaxBytes, controller.signal);
    for await (const event of method.events(call.core, request as never, controller.signal)) {
      if (event.kind === "output") await writer.output(method, event.chunk, event.node);
      else await writer.message(method.encode(event, call.result));
    }
    // A stream that ended because its signal fired (a deadline, a shutdown) ends with that reason.
    if (controller.signal.aborted) throw controller.signal.reason;
    writer.end(undefined);
  } catch (error) {
    const reason = controller.signal.aborted ? controller.signal.reason : error;
    if (ConnectError.from(reason).code === Code.Aborted) throw reason;
    writer.end(toConnectError(reason));
  } finally {
    clearTimeout(deadline);
    res.off("close", left);
    call.shutdownSignal.removeEventListener("abort", shutdown);
    // Like Connect's handler, the call's signal fires when it ends, whatever the end.
    stop(callEnded());
  }
}

/**
 * The reason a call's signal fires with at its end, made without a stack: it fires at the end
 * of every call, the stack would only say "here", and capturing one is most of an Error's cost.
 */
function callEnded(): ConnectError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new ConnectError("the call ended", Code.Canceled);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * Reads a server-streaming call's body, one envelope, and decodes and checks its message:
 * a malformed one is InvalidArgument with legacy 103, an enum number the contract does not
 * declare too (as {@link checkEnums} refuses it), one over `readMaxBytes` ResourceExhausted.
 */
async function readRequest(req: AsyncIterable<Buffer>, input: DescMessage, readMaxBytes: number, signal: AbortSignal): Promise<unknown> {
  const chunks: Buffer[] = [];
  let length = 0;
  let sized = false;
  for await (const chunk of req) {
    if (signal.aborted) throw signal.reason;
    chunks.push(chunk);
    length += chunk.length;
    if (!sized && length >= 5) {
      // The envelope's length is known from its first 5 bytes: a message too large is refused before it is read.
      sized = true;
      const size = Buffer.concat(chunks, length).readUInt32BE(1);
      if (size > readMaxBytes) throw new ConnectError(`message size ${size} is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted);
    }
    if (length > readMaxBytes + 5) throw new ConnectError(`request body of ${length} bytes is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted);
  }
  const body = Buffer.concat(chunks, length);
  if (body.length < 5) throw new ConnectError("protocol error: missing input message for server-streaming method", Code.InvalidArgument, { "drce-error-code": String(ErrorCode.BadInput) });
  const size = body.readUInt32BE(1);
  if (body.length < 5 + size) throw new ConnectError("protocol error: premature end of stream", Code.InvalidArgument, { "drce-error-code": String(ErrorCode.BadInput) });
  if (body.length > 5 + size) throw new ConnectError("protocol error: received extra input message for server-streaming method", Code.InvalidArgument, { "drce-error-code": String(ErrorCode.BadInput) });
  if ((body[0]! & 0x01) !== 0) throw new ConnectError("protocol error: received compressed input message without an encoding", Code.InvalidArgument, { "drce-error-code": String(ErrorCode.BadInput) });
  let message: unknown;
  try {
    message = fromBinary(input, body.subarray(5));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConnectError(`malformed request: not a valid ${input.typeName} message (${reason})`, Code.InvalidArgument, { "drce-error-code": String(ErrorCode.BadInput) });
  }
  checkEnums(input, message as Record<string, unknown>, "");
  return message;
}

/** Writes a call's response: its headers at the first message, its messages, its end. */
interface FrameWriter {
  /** Writes one output message: its header buffer, then the chunk's own bytes. */
  output(method: FramedMethod, chunk: OutputChunk, node: string | undefined): Promise<void>;
  /** Writes one encoded message in its envelope. */
  message(bytes: Uint8Array): Promise<void>;
  /** Ends the stream, with the error when there is one. */
  end(error: ConnectError | undefined): void;
}

function createFrameWriter(res: http.ServerResponse | http2.Http2ServerResponse, wire: Wire, signal: AbortSignal): FrameWriter {
  const contentType = wire === "connect" ? "application/connect+proto" : "application/grpc+proto";
  let started = false;
  const start = (): void => {
    if (started) return;
    started = true;
    res.writeHead(200, { "content-type": contentType });
  };
  const cork = (): void => ("stream" in res ? res.stream.cork() : res.cork());
  const uncork = (): void => ("stream" in res ? res.stream.uncork() : res.uncork());
  // Both kinds of response take a buffer the same way; the union's overloads do not unify.
  const write = (bytes: Uint8Array): boolean => (res as http.ServerResponse).write(bytes);
  const gone = (): boolean => res.destroyed || res.writableEnded || signal.aborted;
  // Backpressure: the next message waits until the stream took this one.
  const drained = async (flushed: boolean): Promise<void> => {
    if (flushed || gone()) return;
    await once(res, "drain", { signal }).catch(() => undefined); // the call's signal fired: the caller left or the call ended, checked by the caller's loop
  };
  return {
    async output(method, chunk, node) {
      if (gone()) return;
      start();
      const [head, tail] = outputFrame(method.outputField, method.nodeField, chunk, node);
      cork();
      write(head);
      let flushed = chunk.data.length === 0 ? true : write(chunk.data);
      if (tail !== undefined) flushed = write(tail);
      uncork();
      await drained(flushed);
    },
    async message(bytes) {
      if (gone()) return;
      start();
      const envelope = Buffer.allocUnsafe(5);
      envelope[0] = 0;
      envelope.writeUInt32BE(bytes.length, 1);
      cork();
      write(envelope);
      const flushed = write(bytes);
      uncork();
      await drained(flushed);
    },
    end(error) {
      if (res.destroyed || res.writableEnded) return;
      if (wire === "connect") {
        start();
        const data = endStream.serialize({ metadata: new Headers(), ...(error === undefined ? {} : { error }) });
        const envelope = Buffer.allocUnsafe(5 + data.length);
        envelope[0] = 0x02;
        envelope.writeUInt32BE(data.length, 1);
        envelope.set(data, 5);
        res.end(envelope);
        return;
      }
      const trailer = new Headers({ "grpc-status": "0" });
      setTrailerStatus(trailer, error);
      const fields: Record<string, string> = {};
      trailer.forEach((value, name) => (fields[name] = value));
      if (!started) {
        // Nothing was sent: gRPC's trailers-only answer, the status in the headers.
        started = true;
        res.writeHead(200, { "content-type": contentType, ...fields });
        res.end();
        return;
      }
      res.addTrailers(fields);
      res.end();
    },
  };
}

/**
 * The bytes around one output chunk in its response message, exactly as `toBinary` writes
 * them: the envelope (flags 0, the message's length), the `output` field's tag and length,
 * then OutputChunk's `stream`, `offset` (absent when 0) and `data`'s tag and length (absent
 * when empty); and after the chunk, the `node` field when the event carries one.
 */
export function outputFrame(outputField: number, nodeField: number, chunk: OutputChunk, node: string | undefined): [head: Buffer, tail: Buffer | undefined] {
  const size = chunk.data.length;
  const inner = 2 + (chunk.offset > 0 ? 1 + varintLength(chunk.offset) : 0) + (size > 0 ? 1 + varintLength(size) + size : 0);
  const tail = node === undefined ? undefined : nodeBytes(nodeField, node);
  const messageLength = 1 + varintLength(inner) + inner + (tail?.length ?? 0);
  const head = Buffer.allocUnsafe(5 + 1 + varintLength(inner) + inner - size);
  head[0] = 0;
  head.writeUInt32BE(messageLength, 1);
  let at = 5;
  head[at++] = (outputField << 3) | 2;
  at = writeVarint(head, at, inner);
  head[at++] = (1 << 3) | 0;
  head[at++] = chunk.stream === "stdout" ? 1 : 2;
  if (chunk.offset > 0) {
    head[at++] = (2 << 3) | 0;
    at = writeVarint(head, at, chunk.offset);
  }
  if (size > 0) {
    head[at++] = (3 << 3) | 2;
    at = writeVarint(head, at, size);
  }
  return [head.subarray(0, at), tail];
}

function nodeBytes(field: number, node: string): Buffer {
  const text = Buffer.from(node, "utf8");
  const bytes = Buffer.allocUnsafe(1 + varintLength(text.length) + text.length);
  bytes[0] = (field << 3) | 2;
  text.copy(bytes, writeVarint(bytes, 1, text.length));
  return bytes;
}

/** Bytes of `value` (a non-negative safe integer) as a protobuf varint. */
function varintLength(value: number): number {
  let length = 1;
  for (let rest = value; rest >= 0x80; rest = Math.floor(rest / 0x80)) length++;
  return length;
}

function writeVarint(target: Buffer, at: number, value: number): number {
  let rest = value;
  while (rest >= 0x80) {
    target[at++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  target[at++] = rest;
  return at;
}
