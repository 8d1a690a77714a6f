import { create, fromBinary, toBinary, type DescMessage, type DescMethodStreaming, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import http2 from "node:http2";
import { Code, ConnectError, type StreamResponse, type Transport, type UnaryResponse } from "@connectrpc/connect";
import { codeFromHttpStatus, errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { envelopeHeaderBytes, MessageStream, type OpenCall, type ResponseHead } from "./connect-message-stream.js";

// The Fetch type a Transport takes its request headers as.
type HeadersInit = Parameters<Transport["unary"]>[3];

/** Options of {@link createConnectH2Transport}: where calls go, what they carry, and what takes the others. */
export interface ConnectH2TransportOptions {
  /** Base URL of the server (http:// or https://); a path in it prefixes every call's. */
  readonly baseUrl: string;
  /** The session manager whose HTTP/2 connection carries every call. */
  readonly sessionManager: Http2SessionManager;
  /** Request headers every call sends (the bearer token), names in lower case. */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * The transport of client-streaming and bidi methods (SendTaskInput). They take a caller's
   * async iterable of messages written as it yields, with the response racing it; connect-node's
   * transport on the same session manager does that well, and such calls are few (one per
   * `drce run --stdin`), so their per-call cost does not matter.
   */
  readonly streamingInput: Transport;
}

// The Connect protocol's envelope: a flags byte and a big-endian 32-bit length.

/**
 * A Connect-protocol transport (binary only, no compression) over the HTTP/2 streams of a
 * session manager, made for a low cost per call: a call's bytes are read by a 'data' listener,
 * its messages decoded with protobuf's `fromBinary` from the received chunks (without a copy
 * when a message lies inside one), and no AbortController, Error or Headers is made on a
 * call's normal end (the response's Headers are made when read). Generated clients use it as
 * any transport (`createClient(Service, transport)`). A signal's abort or the timeout cancels
 * the call's HTTP/2 stream (RST_STREAM CANCEL), which a node reads as its caller leaving.
 */
export function createConnectH2Transport(options: ConnectH2TransportOptions): Transport {
  const base = new URL(options.baseUrl);
  const prefix = base.pathname.replace(/\/+$/, "");
  const fixed = options.headers ?? {};
  const { sessionManager, streamingInput } = options;

  function requestHeaders(contentType: string, timeoutMs: number | undefined, header: HeadersInit | undefined): http2.OutgoingHttpHeaders {
    const headers: http2.OutgoingHttpHeaders = { "content-type": contentType, "connect-protocol-version": "1", ...fixed };
    if (timeoutMs !== undefined) headers["connect-timeout-ms"] = String(timeoutMs);
    if (header !== undefined) for (const [name, value] of headerPairs(header)) headers[name.toLowerCase()] = value;
    return headers;
  }

  return {
    async unary<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, signal: AbortSignal | undefined, timeoutMs: number | undefined, header: HeadersInit | undefined, input: MessageInitShape<I>): Promise<UnaryResponse<I, O>> {
      const deadline = effectiveTimeout(timeoutMs);
      const body = toBinary(method.input, create(method.input, input));
      const call = await openCall(sessionManager, `${prefix}/${method.parent.typeName}/${method.name}`, requestHeaders("application/proto", deadline, header), signal, deadline);
      call.stream.end(body);
      const { status, headers, chunks, trailers } = await call.whole();
      const responseHeaders = withoutTrailerPrefix(headers);
      const trailerFields = { ...trailerPrefixed(headers), ...plainFields(trailers) };
      const contentType = String(headers["content-type"] ?? "");
      const bytes = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      if (status !== 200) {
        const fallback = new ConnectError(`HTTP ${status}`, codeFromHttpStatus(status), toHeaders(responseHeaders));
        if (/^application\/json/i.test(contentType)) throw errorFromJsonBytes(bytes, toHeaders({ ...responseHeaders, ...trailerFields }), fallback);
        throw fallback;
      }
      checkContentType(contentType, /^application\/proto(;|$)/i, responseHeaders);
      checkEncoding(headers["content-encoding"], responseHeaders);
      const message = fromBinary(method.output, bytes) as MessageShape<O>;
      return lazyHeaders({ stream: false as const, service: method.parent, method, message }, responseHeaders, trailerFields);
    },

    async stream<I extends DescMessage, O extends DescMessage>(method: DescMethodStreaming<I, O>, signal: AbortSignal | undefined, timeoutMs: number | undefined, header: HeadersInit | undefined, input: AsyncIterable<MessageInitShape<I>>, contextValues?: Parameters<Transport["stream"]>[5]): Promise<StreamResponse<I, O>> {
      if (method.methodKind !== "server_streaming") return streamingInput.stream(method, signal, timeoutMs, header, input, contextValues);
      const deadline = effectiveTimeout(timeoutMs);
      let first: MessageInitShape<I> | undefined;
      for await (const message of input) {
        first = message;
        break;
      }
      if (first === undefined) throw new ConnectError("protocol error: missing request message", Code.Internal);
      const payload = toBinary(method.input, create(method.input, first));
      const body = Buffer.allocUnsafe(envelopeHeaderBytes + payload.byteLength);
      body[0] = 0;
      body.writeUInt32BE(payload.byteLength, 1);
      body.set(payload, envelopeHeaderBytes);
      const call = await openCall(sessionManager, `${prefix}/${method.parent.typeName}/${method.name}`, requestHeaders("application/connect+proto", deadline, header), signal, deadline);
      call.stream.end(body);
      const { status, headers } = await call.response;
      const responseHeaders = plainFields(headers);
      if (status !== 200) {
        call.cancel();
        throw new ConnectError(`HTTP ${status}`, codeFromHttpStatus(status), toHeaders(responseHeaders));
      }
      try {
        checkContentType(String(headers["content-type"] ?? ""), /^application\/connect\+proto(;|$)/i, responseHeaders);
        checkEncoding(headers["connect-content-encoding"], responseHeaders);
      } catch (error) {
        call.cancel();
        throw error;
      }
      const messages = new MessageStream(call, method.output);
      return lazyHeaders({ stream: true as const, service: method.parent, method, message: messages as AsyncIterable<MessageShape<O>> }, responseHeaders, () => messages.trailers);
    },
  };
}

function effectiveTimeout(timeoutMs: number | undefined): number | undefined {
  return timeoutMs === undefined || timeoutMs <= 0 ? undefined : timeoutMs;
}

/**
 * Opens a call's stream and ties its end together: the first of the response's end, a stream
 * or connection failure, the signal's abort and the deadline wins; the listeners of the others
 * are removed, so that a normal end makes no error.
 */
async function openCall(sessionManager: Http2SessionManager, path: string, headers: http2.OutgoingHttpHeaders, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<OpenCall> {
  if (signal?.aborted === true) throw abortError(signal);
  let stream: http2.ClientHttp2Stream;
  try {
    stream = await sessionManager.request("POST", path, headers, {});
  } catch (error) {
    throw fromNodeReason(error);
  }
  let failure: ConnectError | undefined;
  let ended = false;
  let timer: NodeJS.Timeout | undefined;
  let onFailure: ((error: ConnectError) => void) | undefined;
  let onHead: ((head: ResponseHead) => void) | undefined;
  let head: ResponseHead | undefined;

  function finish(): void {
    ended = true;
    if (timer !== undefined) clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
  function fail(error: ConnectError): void {
    if (ended) return;
    failure = error;
    finish();
    // A caller that leaves (or runs out of time) cancels the stream: the node reads CANCEL
    // as its caller gone, and stops a `run` task it was watching for it.
    if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
    onFailure?.(error);
  }
  function onAbort(): void {
    fail(abortError(signal as AbortSignal));
  }

  if (signal !== undefined) signal.addEventListener("abort", onAbort, { once: true });
  if (timeoutMs !== undefined) timer = setTimeout(() => fail(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeoutMs);
  stream.on("error", (error: Error) => {
    // The node may answer and end the call before the request is written out.
    if (stream.writableEnded && errorCodes(error).includes("ERR_STREAM_WRITE_AFTER_END")) return;
    fail(fromNodeReason(error));
  });
  stream.on("close", () => {
    if (ended) return;
    fail(fromResetCode(stream.rstCode) ?? new ConnectError("http/2 stream closed before the response ended", Code.Internal));
  });
  const response = new Promise<ResponseHead>((resolve, reject) => {
    onFailure = reject;
    onHead = resolve;
  });
  stream.once("response", (headers: http2.IncomingHttpHeaders) => {
    head = { status: Number(headers[":status"] ?? 0), headers };
    onHead?.(head);
  });

  return {
    stream,
    response,
    whole() {
      const chunks: Buffer[] = [];
      let trailers: http2.IncomingHttpHeaders = {};
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.once("trailers", (fields: http2.IncomingHttpHeaders) => (trailers = fields));
      return new Promise((resolve, reject) => {
        onFailure = reject;
        if (failure !== undefined) return reject(failure);
        stream.once("end", () => {
          if (ended) return;
          finish();
          sessionManager.notifyResponseByteRead(stream);
          if (head === undefined) reject(new ConnectError("protocol error: the stream ended without a response", Code.Internal));
          else resolve({ ...head, chunks, trailers });
        });
      });
    },
    listen(onData, onEnd, onFail) {
      onFailure = onFail;
      if (failure !== undefined) return onFail(failure);
      let trailers: http2.IncomingHttpHeaders = {};
      stream.once("trailers", (fields: http2.IncomingHttpHeaders) => (trailers = fields));
      stream.on("data", (chunk: Buffer) => {
        sessionManager.notifyResponseByteRead(stream);
        onData(chunk);
      });
      stream.once("end", () => {
        if (ended) return;
        finish();
        onEnd(trailers);
      });
    },
    cancel() {
      fail(new ConnectError("the call was cancelled", Code.Canceled));
    },
  };
}

/** A response whose `header` and `trailer` are made on first read: most callers read neither. */
function lazyHeaders<T extends object>(response: T, header: Record<string, string>, trailer: Record<string, string> | (() => Record<string, string>)): T & { readonly header: Headers; readonly trailer: Headers } {
  let madeHeader: Headers | undefined;
  let madeTrailer: Headers | undefined;
  return Object.defineProperties(response, {
    header: { enumerable: true, get: () => (madeHeader ??= toHeaders(header)) },
    trailer: { enumerable: true, get: () => (madeTrailer ??= toHeaders(typeof trailer === "function" ? trailer() : trailer)) },
  }) as T & { readonly header: Headers; readonly trailer: Headers };
}

function toHeaders(fields: Record<string, string>): Headers {
  const headers = new Headers();
  for (const name in fields) headers.set(name, fields[name] as string);
  return headers;
}

/** The response's fields as strings, without HTTP/2's pseudo-headers. */
function plainFields(headers: http2.IncomingHttpHeaders): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const name in headers) {
    if (name.startsWith(":")) continue;
    const value = headers[name];
    if (value !== undefined) fields[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return fields;
}

/** A unary response's headers, its `trailer-` fields left out. */
function withoutTrailerPrefix(headers: http2.IncomingHttpHeaders): Record<string, string> {
  const fields = plainFields(headers);
  for (const name in fields) if (name.startsWith("trailer-")) delete fields[name];
  return fields;
}

/** A unary response's trailers: its `trailer-` fields, without the prefix. */
function trailerPrefixed(headers: http2.IncomingHttpHeaders): Record<string, string> {
  const fields = plainFields(headers);
  const trailers: Record<string, string> = {};
  for (const name in fields) if (name.startsWith("trailer-")) trailers[name.slice("trailer-".length)] = fields[name] as string;
  return trailers;
}

function checkContentType(contentType: string, expected: RegExp, headers: Record<string, string>): void {
  if (expected.test(contentType)) return;
  const known = /^application\/(connect\+)?(proto|json)/i.test(contentType);
  throw new ConnectError(`unsupported content type ${contentType === "" ? "null" : contentType}`, known ? Code.Internal : Code.Unknown, toHeaders(headers));
}

function checkEncoding(encoding: string | string[] | undefined, headers: Record<string, string>): void {
  if (encoding === undefined || String(encoding).toLowerCase() === "identity") return;
  throw new ConnectError(`unsupported response encoding "${String(encoding)}"`, Code.Internal, toHeaders(headers));
}

/** The [name, value] pairs of any HeadersInit. */
function headerPairs(init: NonNullable<HeadersInit>): Iterable<[string, string]> {
  if (Array.isArray(init)) return init as [string, string][];
  if (typeof (init as Headers).forEach === "function" && typeof (init as Headers).get === "function") {
    const pairs: [string, string][] = [];
    (init as Headers).forEach((value, name) => pairs.push([name, value]));
    return pairs;
  }
  return Object.entries(init as Record<string, string>);
}

function abortError(signal: AbortSignal): ConnectError {
  return ConnectError.from(signal.reason, Code.Canceled);
}

function errorCodes(reason: unknown): string[] {
  const codes: string[] = [];
  const seen = new Set<unknown>();
  for (let error = reason; error instanceof Error && !seen.has(error); error = error.cause) {
    seen.add(error);
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code === "string") codes.push(code);
  }
  return codes;
}

/** A Node.js failure as the ConnectError connect-node makes of it (the same codes, the cause kept). */
function fromNodeReason(reason: unknown): ConnectError {
  if (reason instanceof ConnectError) return reason;
  const codes = errorCodes(reason);
  let code = Code.Internal;
  if (codes.some((c) => c === "ERR_STREAM_WRITE_AFTER_END" || c === "ERR_STREAM_DESTROYED" || c === "ERR_HTTP2_INVALID_STREAM" || c === "ECONNRESET")) code = Code.Aborted;
  else if (codes.some((c) => c === "ETIMEDOUT" || c === "ENOTFOUND" || c === "EAI_AGAIN" || c === "ECONNREFUSED")) code = Code.Unavailable;
  const error = ConnectError.from(reason, code);
  if (error !== reason) error.cause = reason;
  return error;
}

const resetNames: Readonly<Record<number, [string, Code]>> = {
  1: ["PROTOCOL_ERROR", Code.Internal],
  2: ["INTERNAL_ERROR", Code.Internal],
  3: ["FLOW_CONTROL_ERROR", Code.Internal],
  4: ["SETTINGS_TIMEOUT", Code.Internal],
  6: ["FRAME_SIZE_ERROR", Code.Internal],
  7: ["REFUSED_STREAM", Code.Unavailable],
  8: ["CANCEL", Code.Canceled],
  9: ["COMPRESSION_ERROR", Code.Internal],
  10: ["CONNECT_ERROR", Code.Internal],
  11: ["ENHANCE_YOUR_CALM", Code.ResourceExhausted],
  12: ["INADEQUATE_SECURITY", Code.PermissionDenied],
  13: ["HTTP_1_1_REQUIRED", Code.PermissionDenied],
};

/** The failure an RST_STREAM code stands for, as connect-node names it; none for NO_ERROR. */
function fromResetCode(rstCode: number | undefined): ConnectError | undefined {
  const known = rstCode === undefined ? undefined : resetNames[rstCode];
  if (rstCode === undefined || known === undefined) return undefined;
  return new ConnectError(`http/2 stream closed with error code ${known[0]} (0x${rstCode.toString(16)})`, known[1]);
}
