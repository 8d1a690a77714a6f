import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { ErrorCode } from "../domain/errors.js";
import type { LegacyHandler, LegacyReply, LegacyStreamedReply } from "./legacy-handler.js";

/** Options of {@link handleLegacyHttp}. */
export interface LegacyHttpOptions {
  /** Largest accepted request body, in bytes; a larger one is refused with 413 before parsing. */
  readonly maxBodyBytes: number;
}

/** The path the legacy gateway answers on. */
export const legacyHttpPath = "/drce";

/**
 * Serves `POST /drce`: reads the body up to `maxBodyBytes`, hands it to the legacy handler and
 * writes its reply as `application/json`. Protocol-level failures are result items with status
 * 200; a body too large is 413 and any other method 405, both with a JSON error item. Routing to
 * this path is the caller's business. Never rejects.
 */
export async function handleLegacyHttp(
  handler: LegacyHandler,
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
  options: LegacyHttpOptions,
): Promise<void> {
  const http1 = req.httpVersionMajor < 2;
  const send = (reply: LegacyReply, extraHeaders: Record<string, string> = {}): void => {
    if (res.headersSent || res.writableEnded) return;
    res.statusCode = reply.status;
    res.setHeader("content-type", "application/json");
    res.setHeader("cache-control", "no-store");
    for (const [name, value] of Object.entries(extraHeaders)) res.setHeader(name, value);
    if (reply.retryAfterMs !== undefined) res.setHeader("retry-after", String(Math.max(1, Math.ceil(reply.retryAfterMs / 1000))));
    res.end(reply.body);
  };

  if (req.method !== "POST") {
    req.resume();
    send({ ...handler.errorReply(ErrorCode.BadInput, `method ${req.method ?? ""} is not allowed; use POST`), status: 405 }, { allow: "POST" });
    return;
  }

  const tooLarge = (): void => {
    // Stop reading: the rest of the body is discarded, and an HTTP/1 connection is not reused.
    req.resume();
    send(
      { ...handler.errorReply(ErrorCode.BadInput, `the request body is larger than ${options.maxBodyBytes} bytes`), status: 413 },
      http1 ? { connection: "close" } : {},
    );
  };

  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > options.maxBodyBytes) {
    tooLarge();
    return;
  }

  // The caller going away aborts the wait for a sync task (the task itself runs on).
  const controller = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) controller.abort(new Error("the HTTP client went away"));
  };
  res.on("close", onClose);

  try {
    const body = await readBody(req, options.maxBodyBytes);
    if (body === undefined) {
      tooLarge();
      return;
    }
    const reply = await handler.handleStreamed(body, controller.signal);
    await sendStreamed(res, reply);
  } catch {
    // Reading failed: the connection broke, nobody is left to answer.
    if (!res.headersSent && !res.writableEnded) send({ ...handler.errorReply(ErrorCode.InternalFo, "the request body could not be read"), status: 400 });
  } finally {
    res.off("close", onClose);
  }
}

/**
 * Writes a streamed reply with its exact Content-Length, a piece at a time, each after the
 * connection took the one before (a slow reader holds the node to a piece, not to the
 * reply). Releases the reply's outputs however it ends.
 */
async function sendStreamed(res: ServerResponse | Http2ServerResponse, reply: LegacyStreamedReply): Promise<void> {
  try {
    if (res.headersSent || res.writableEnded || res.destroyed) return;
    res.statusCode = reply.status;
    res.setHeader("content-type", "application/json");
    res.setHeader("cache-control", "no-store");
    res.setHeader("content-length", String(reply.body.byteLength));
    if (reply.retryAfterMs !== undefined) res.setHeader("retry-after", String(Math.max(1, Math.ceil(reply.retryAfterMs / 1000))));
    for await (const chunk of reply.body.chunks()) {
      if (res.destroyed) return;
      if (!(res as ServerResponse).write(chunk)) await drained(res);
    }
    res.end();
  } catch {
    // The reply broke after its headers (its files could not be read): the length it
    // announced was not met, so the client sees a truncated body, never a short valid one.
    res.destroy();
  } finally {
    await reply.body.release();
  }
}

/** Resolves when the response can take more, or has closed. */
function drained(res: ServerResponse | Http2ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/**
 * Reads a whole body; undefined as soon as it exceeds the limit. Event-based rather than
 * `for await`: leaving an async iterator destroys the stream, and with it the socket the 413
 * still has to be written to.
 */
function readBody(req: IncomingMessage | Http2ServerRequest, maxBytes: number): Promise<Uint8Array | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("aborted", onAborted);
    };
    const onData = (chunk: Buffer | string): void => {
      const buffer = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      size += buffer.length;
      if (size > maxBytes) {
        cleanup();
        resolve(undefined);
        return;
      }
      chunks.push(buffer);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const onAborted = (): void => onError(new Error("the request was aborted"));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("aborted", onAborted);
  });
}
