import { fromBinary, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { ErrorCode } from "../domain/errors.js";

/**
 * Wraps a Connect universal handler so that a request body that is not a valid binary
 * message of the method's input type is refused with InvalidArgument (legacy error 103 in
 * the `drce-error-code` metadata), on every protocol: Connect unary (`application/proto`),
 * Connect streaming, gRPC and gRPC-Web.
 *
 * The Connect framework parses request bodies before any interceptor runs and reports a
 * parse failure as Internal (HTTP 500, gRPC INTERNAL), as if the node were broken. The body
 * is checked here, message by message, as it arrives: each message is decoded once to find
 * out whether it parses, and passed on unchanged, so the framework still does the real
 * parsing, size limits and decompression errors as before. A message larger than
 * `readMaxBytes` is passed on unchecked, for the framework to refuse with ResourceExhausted.
 * JSON bodies are not checked: the framework already answers bad JSON with InvalidArgument.
 */
export function refuseMalformedBinary(handler: UniversalHandler, readMaxBytes: number): UniversalHandler {
  const input = handler.method.input;
  const wrapped = (request: UniversalServerRequest) => {
    const body = request.body;
    if (typeof body !== "object" || body === null || !(Symbol.asyncIterator in body)) return handler(request);
    const bytes = body as AsyncIterable<Uint8Array>;
    const format = wireFormat(request.header.get("content-type"));
    if (format === undefined) return handler(request);
    const encoding = request.header.get(format === "unary" ? "content-encoding" : format === "connect-stream" ? "connect-content-encoding" : "grpc-encoding");
    const checked = format === "unary" ? checkedUnary(bytes, input, encoding, readMaxBytes) : checkedEnvelopes(bytes, input, encoding, readMaxBytes);
    return handler({ ...request, body: checked });
  };
  return Object.assign(wrapped, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}

/** How a request body carries its messages, by content type; undefined: not binary protobuf. */
function wireFormat(contentType: string | null): "unary" | "connect-stream" | "grpc" | undefined {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (type === "application/proto") return "unary";
  if (type === "application/connect+proto") return "connect-stream";
  if (type === "application/grpc" || type === "application/grpc+proto" || type === "application/grpc-web" || type === "application/grpc-web+proto") return "grpc";
  return undefined;
}

/** The whole body of a Connect unary call, checked once it is in. */
async function* checkedUnary(body: AsyncIterable<Uint8Array>, input: DescMessage, encoding: string | null, readMaxBytes: number): AsyncGenerator<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const iterator = body[Symbol.asyncIterator]();
  for (;;) {
    const next = await iterator.next();
    if (next.done === true) break;
    chunks.push(next.value);
    length += next.value.length;
    if (length > readMaxBytes) {
      // Too large to check: the framework refuses it with ResourceExhausted.
      yield* chunks;
      for (;;) {
        const rest = await iterator.next();
        if (rest.done === true) return;
        yield rest.value;
      }
    }
  }
  const whole = Buffer.concat(chunks, length);
  check(input, whole, encoding, readMaxBytes);
  yield whole;
}

/** Envelopes (flags, 4-byte length, message) of a streaming or gRPC body, each checked as it completes. */
async function* checkedEnvelopes(body: AsyncIterable<Uint8Array>, input: DescMessage, encoding: string | null, readMaxBytes: number): AsyncGenerator<Uint8Array> {
  let pending = Buffer.alloc(0);
  const iterator = body[Symbol.asyncIterator]();
  for (;;) {
    const next = await iterator.next();
    if (next.done === true) break;
    pending = pending.length === 0 ? Buffer.from(next.value) : Buffer.concat([pending, next.value]);
    while (pending.length >= 5) {
      const size = pending.readUInt32BE(1);
      if (size > readMaxBytes) {
        // Too large to check: the framework refuses it with ResourceExhausted.
        yield pending;
        for (;;) {
          const rest = await iterator.next();
          if (rest.done === true) return;
          yield rest.value;
        }
      }
      if (pending.length < 5 + size) break;
      const envelope = pending.subarray(0, 5 + size);
      pending = pending.subarray(5 + size);
      const flags = envelope[0] ?? 0;
      // Flag 0x80 marks gRPC-Web trailers and 0x02 a Connect end-stream message: not request messages.
      if ((flags & 0x82) === 0) check(input, envelope.subarray(5), (flags & 0x01) === 0 ? null : encoding, readMaxBytes);
      yield envelope;
    }
  }
  // An incomplete envelope at the end is the framework's to report.
  if (pending.length > 0) yield pending;
}

/** Throws InvalidArgument when `data` (decompressed when `encoding` says so) is not an `input` message. */
function check(input: DescMessage, data: Uint8Array, encoding: string | null, readMaxBytes: number): void {
  let message: Uint8Array;
  try {
    message = decompress(data, encoding, readMaxBytes);
  } catch {
    // A compressed body that does not decompress, or an unknown encoding: the framework reports it.
    return;
  }
  try {
    fromBinary(input, message);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConnectError(`malformed request: not a valid ${input.typeName} message (${reason})`, Code.InvalidArgument, { "drce-error-code": String(ErrorCode.BadInput) });
  }
}

function decompress(data: Uint8Array, encoding: string | null, readMaxBytes: number): Uint8Array {
  const name = (encoding ?? "identity").trim().toLowerCase();
  if (name === "identity" || name === "") return data;
  if (name === "gzip") return gunzipSync(data, { maxOutputLength: Math.max(1, readMaxBytes) });
  if (name === "br") return brotliDecompressSync(data, { maxOutputLength: Math.max(1, readMaxBytes) });
  throw new Error(`unknown encoding ${name}`);
}
