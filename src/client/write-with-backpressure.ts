import { once } from "node:events";
import type { Writable } from "node:stream";

/**
 * Writes bytes to a writable stream and resolves once the stream accepted them, waiting for
 * `drain` when its buffer is full, so that output of any size passes through a bounded
 * buffer instead of piling up in memory. Fails when the stream is closed already, fails or
 * closes before it drains, or when the signal aborts: output is never dropped unsaid.
 */
export async function writeWithBackpressure(stream: NodeJS.WritableStream, data: Uint8Array, signal?: AbortSignal): Promise<void> {
  // A destroyed stream takes a write without a word and never drains nor closes again.
  if (isClosed(stream)) throw closedError();
  if (stream.write(data)) return;
  if (isClosed(stream)) throw closedError();
  // Both waits end with the first of them: listeners left on the stream would pile up, one per full buffer.
  const settled = new AbortController();
  const stop = signal === undefined ? settled.signal : AbortSignal.any([signal, settled.signal]);
  const drained = once(stream, "drain", { signal: stop });
  const closed = once(stream, "close", { signal: stop }).then(() => {
    throw closedError();
  });
  try {
    await Promise.race([drained, closed]);
  } finally {
    settled.abort();
    drained.catch(() => undefined); // the race is settled; the loser's abort is no failure
    closed.catch(() => undefined); // the race is settled; the loser's abort is no failure
  }
}

function isClosed(stream: NodeJS.WritableStream): boolean {
  const state = stream as Partial<Pick<Writable, "destroyed" | "writableEnded">>;
  return state.destroyed === true || state.writableEnded === true;
}

function closedError(): Error {
  return new Error("the output stream closed before it took all the bytes");
}
