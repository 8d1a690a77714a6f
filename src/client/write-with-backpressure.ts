import { once } from "node:events";

/**
 * Writes bytes to a writable stream and resolves once the stream accepted them, waiting for
 * `drain` when its buffer is full, so that output of any size passes through a bounded
 * buffer instead of piling up in memory. Fails when the stream fails or closes first, or
 * when the signal aborts.
 */
export async function writeWithBackpressure(stream: NodeJS.WritableStream, data: Uint8Array, signal?: AbortSignal): Promise<void> {
  if (stream.write(data)) return;
  // Both waits end with the first of them: listeners left on the stream would pile up, one per full buffer.
  const settled = new AbortController();
  const stop = signal === undefined ? settled.signal : AbortSignal.any([signal, settled.signal]);
  const drained = once(stream, "drain", { signal: stop });
  const closed = once(stream, "close", { signal: stop }).then(() => {
    throw new Error("the output stream closed before it took all the bytes");
  });
  try {
    await Promise.race([drained, closed]);
  } finally {
    settled.abort();
    drained.catch(() => undefined); // the race is settled; the loser's abort is no failure
    closed.catch(() => undefined); // the race is settled; the loser's abort is no failure
  }
}
