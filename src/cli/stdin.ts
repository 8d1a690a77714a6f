/**
 * Reads a stream chunk by chunk until its end or until the signal fires, pausing the
 * stream while a chunk is being handled (backpressure towards the producer).
 *
 * Unlike `for await (… of stream)`, the signal ends the iteration at once even while no
 * data comes: `drce run` must stop reading a stdin that stays open (`sleep 1000 | drce
 * run -- true`) when the task has ended. The stream is left paused, not destroyed.
 */
export async function* readChunks(stream: NodeJS.ReadableStream, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  if (signal.aborted) return;
  // An already ended stream emits no more events.
  if ((stream as { readableEnded?: boolean }).readableEnded === true) return;
  const queue: Uint8Array[] = [];
  let finished = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  const onData = (chunk: Buffer | string): void => {
    queue.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    stream.pause();
    notify();
  };
  const onEnd = (): void => {
    finished = true;
    notify();
  };
  const onError = (error: unknown): void => {
    failure = error;
    finished = true;
    notify();
  };
  stream.on("data", onData);
  stream.on("end", onEnd);
  stream.on("close", onEnd);
  stream.on("error", onError);
  signal.addEventListener("abort", notify);
  try {
    for (;;) {
      if (signal.aborted) return;
      const chunk = queue.shift();
      if (chunk !== undefined) {
        yield chunk;
        continue;
      }
      if (finished) {
        if (failure !== undefined) throw failure;
        return;
      }
      const waiting = new Promise<void>((resolve) => (wake = resolve));
      stream.resume();
      await waiting;
    }
  } finally {
    signal.removeEventListener("abort", notify);
    stream.off("data", onData);
    stream.off("end", onEnd);
    stream.off("close", onEnd);
    stream.off("error", onError);
    stream.pause();
  }
}
