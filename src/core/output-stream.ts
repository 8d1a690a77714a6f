import type { FileHandle } from "node:fs/promises";
import { isFinalState } from "../domain/states.js";
import type { StreamName } from "../domain/task.js";
import { OutputSpool } from "../store/spool.js";
import type { OutputEvent } from "./api.js";
import type { CoreContext } from "./core-context.js";
import type { TaskRecord } from "./task-registry.js";
import { viewOf } from "./task-views.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Largest output chunk a stream sends in one message: big enough that per-message work
 * (a file read, encoding, a write to the HTTP/2 stream) is small against the bytes, well
 * under the 4 MiB message limit gRPC clients default to.
 */
const outputChunkBytes = 1024 * 1024;

/**
 * Reads one output chunk from `offset` (up to `available`) into a buffer `bufferFor`
 * gives, read into directly: the message takes it as it is, no copy. Empty at the end of
 * the file.
 */
async function readChunk(handle: FileHandle, offset: number, available: number, bufferFor: (length: number) => Buffer): Promise<Buffer> {
  const length = Math.min(outputChunkBytes, available - offset);
  const data = bufferFor(length);
  const { bytesRead } = await handle.read(data, 0, length, offset);
  return data.subarray(0, bytesRead);
}

/** Chunks below this are read into buffers of their own (Node's small-buffer pool serves them). */
const ownBufferBelow = 64 * 1024;

/**
 * The read buffers of one output stream: two of a chunk each, used in turn. At most two
 * reads are outstanding (the chunk being sent and the one read ahead), one after the
 * other, so the buffer a read gets is never the other's; and a sent chunk's buffer comes
 * back once the consumer asks for the next event (see OutputChunk). Reusing them, rather
 * than allocating a MiB per message, keeps V8 from seeing a gigabyte of fresh external
 * memory per gigabyte sent, which is what drives its full garbage collections during a
 * transfer (BENCHMARKS.md has the figures). Only a consumer that asked to be lent them
 * gets them (see OutputStreamOptions); any other gets a buffer of its own per chunk, which
 * it may keep or forward.
 */
function chunkBuffers(lend: boolean): (length: number) => Buffer {
  const buffers: Buffer[] = [];
  let turn = 0;
  return (length) => {
    if (!lend || length < ownBufferBelow) return Buffer.allocUnsafe(length);
    const index = turn++ % 2;
    return (buffers[index] ??= Buffer.allocUnsafe(outputChunkBytes)).subarray(0, length);
  };
}

/** Resolves when the signal aborts (never rejects). */
const aborted = (signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true })));

/**
 * Where a stream's bytes are in its file: below `head` at their own offsets; from `gapEnd`
 * on at `head + (offset - gapEnd)`; between them, not kept (the stream passed the cap).
 * Without a gap both are infinite. `fileEnd` is what the file holds now.
 */
interface Layout {
  readonly fileEnd: number;
  readonly head: number;
  readonly gapEnd: number;
}

const noGap = (fileEnd: number): Layout => ({ fileEnd, head: Number.POSITIVE_INFINITY, gapEnd: Number.POSITIVE_INFINITY });

/** The layout of a stream from its spool, while the task is live. */
const liveLayout = (spool: OutputSpool): Layout => {
  // While written, the file is readable up to the head; the tail is stitched on completion.
  if (!spool.complete || !spool.truncated) return noGap(spool.available);
  const fileEnd = spool.available;
  return { fileEnd, head: spool.headBytes, gapEnd: spool.total - (fileEnd - spool.headBytes) };
};

/** The layout of a stored stream, from the task's final status and its file. */
const storedLayout = async (context: CoreContext, record: TaskRecord, stream: StreamName): Promise<Layout> => {
  const status = record.status;
  const fileEnd = await context.store.outputSize(status.id, stream);
  const total = stream === "stdout" ? status.stdoutSize : status.stderrSize;
  const truncated = stream === "stdout" ? status.stdoutTruncated : status.stderrTruncated;
  if (!truncated || total <= fileEnd) return noGap(fileEnd);
  // A truncated file holds exactly the cap: its first half (rounded up) is the head.
  const head = Math.ceil(fileEnd / 2);
  return { fileEnd, head, gapEnd: total - (fileEnd - head) };
};

/**
 * Streams a task's output from offsets; with follow, until the task is final. Offsets are
 * those of the streams as the command wrote them; where the kept copy was cut, a gap event
 * says where and how much. The `attached` reader (RunTask's) takes the bytes past the head
 * from the spools' live queues instead, so it gets every byte whatever the cap.
 */
export async function* streamOutputOf(
  context: CoreContext,
  record: TaskRecord,
  offsets: Readonly<Record<StreamName, number>>,
  follow: boolean,
  signal: AbortSignal,
  attached: boolean,
  lendBuffers: boolean,
): AsyncGenerator<OutputEvent> {
  const { store } = context;
  const { run } = record;
  const id = record.status.id;
  // A reader's files stay until it is done with them (see hold).
  const release = context.hold(record);
  const position: Record<StreamName, number> = { stdout: offsets.stdout, stderr: offsets.stderr };
  const handles: Partial<Record<StreamName, FileHandle>> = {};
  const stopped = aborted(signal); // one listener for the whole stream, not one per wait
  let readAhead: { stream: StreamName; offset: number; data: Promise<Buffer> } | undefined;
  /** Since when (performance.now()) a stream's few ready bytes have been held back; see below. */
  const heldSince: Partial<Record<StreamName, number>> = {};
  const bufferFor = chunkBuffers(lendBuffers);
  /** Closes the files (once a read under way has ended) and lets an attached reader's writers go. */
  let released: Promise<void> | undefined;
  const releaseFiles = (): Promise<void> =>
    (released ??= (async () => {
      await readAhead?.data.catch(() => undefined); // its failure is no one's now: the stream is over
      for (const handle of Object.values(handles)) await handle?.close();
      // An attached reader that leaves lets the command's writes go on without it.
      if (attached) run.detachSpools();
    })());
  // A consumer that goes away while this stream waits at a yield may never resume or end it
  // (a reader dropped for stalling, whose last write never completes): its files are
  // released on the abort itself. A stream that is running sees the abort and ends.
  let atYield = false;
  const onAbort = (): void => {
    if (atYield) void releaseFiles().catch((error: unknown) => context.reportInternal(id, error));
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      if (signal.aborted) return;
      // Snapshot before reading: if the task was final before this pass, this pass
      // reads everything there will ever be.
      const finalBefore = !run.live || isFinalState(record.status.state);
      await run.started;
      // The attached reader's spools outlast the task's live state: their live queues may
      // still hold the last bytes when the task turns final.
      const spools = attached ? run.attachedSpools : run.spools;
      let progressed = false;
      /** The earliest time a held-back stream is due, or undefined when none is held. */
      let heldUntil: number | undefined;
      for (const stream of ["stdout", "stderr"] as const) {
        const live = spools !== undefined && (attached || run.live) ? spools[stream] : undefined;
        if (attached && live?.attached === true && position[stream] >= live.headBytes) {
          // Past the head, the attached reader's bytes wait in the spool's live queue.
          for (let piece = live.takeLive(); piece !== undefined; piece = signal.aborted ? undefined : live.takeLive()) {
            atYield = true;
            yield { kind: "output", chunk: { stream, offset: piece.offset, data: piece.data } };
            atYield = false;
            if (signal.aborted) return;
            position[stream] = piece.offset + piece.data.length;
            progressed = true;
          }
          continue;
        }
        const layout = attached && live !== undefined ? noGap(Math.min(live.available, live.headBytes)) : live !== undefined ? liveLayout(live) : await storedLayout(context, record, stream);
        // A stream still being written with less than a message's worth ready is held back
        // for up to OutputSpool.wakeDelayMs, for more: sending each 64 KiB the command writes
        // as its own message costs several times the CPU per byte of sending it by the MiB.
        const available = layout.fileEnd;
        if (live !== undefined && !live.complete && available > position[stream] && available - position[stream] < outputChunkBytes) {
          const now = performance.now();
          const due = (heldSince[stream] ??= now) + OutputSpool.wakeDelayMs;
          if (now < due) {
            heldUntil = Math.min(heldUntil ?? due, due);
            continue;
          }
        }
        delete heldSince[stream];
        while (!signal.aborted) {
          const at = position[stream];
          if (at >= layout.head && at < layout.gapEnd) {
            atYield = true;
            yield { kind: "gap", gap: { stream, offset: at, bytes: layout.gapEnd - at } };
            atYield = false;
            if (signal.aborted) return;
            position[stream] = layout.gapEnd;
            progressed = true;
            continue;
          }
          const fileAt = at < layout.head ? at : layout.head + (at - layout.gapEnd);
          const fileEnd = at < layout.head ? Math.min(layout.head, layout.fileEnd) : layout.fileEnd;
          if (fileAt >= fileEnd) break;
          const handle = (handles[stream] ??= await store.openOutputFile(id, stream));
          if (signal.aborted) break;
          const data = await (readAhead?.stream === stream && readAhead.offset === fileAt ? readAhead.data : readChunk(handle, fileAt, fileEnd, bufferFor));
          readAhead = undefined;
          if (data.length === 0) break;
          const next = fileAt + data.length;
          // The next chunk is read from the file while this one is sent: the disk (or page
          // cache) and the connection work at once instead of in turn.
          if (next < fileEnd) {
            const ahead = readChunk(handle, next, fileEnd, bufferFor);
            ahead.catch(() => undefined); // handled when awaited; never an unhandled rejection meanwhile
            readAhead = { stream, offset: next, data: ahead };
          }
          atYield = true;
          yield { kind: "output", chunk: { stream, offset: at, data } };
          atYield = false;
          if (signal.aborted) return;
          position[stream] = at + data.length;
          progressed = true;
        }
      }
      if (!follow) return;
      if (finalBefore && !progressed) {
        const view = await viewOf(context, record, "none", false);
        atYield = true;
        yield { kind: "result", view };
        return;
      }
      const writing = spools === undefined ? [] : [spools.stdout, spools.stderr].filter((spool) => !spool.complete);
      if (!progressed && run.live && writing.length > 0) {
        // Only spools still being written can change; a complete one would wake us at once.
        // Subscriptions are dropped after the wait, so waits do not pile up on a quiet stream.
        // Bytes held back above are sent after at most OutputSpool.wakeDelayMs.
        let wake!: () => void;
        const woken = new Promise<void>((resolve) => (wake = resolve));
        const unsubscribe = writing.map((spool) => spool.subscribe(wake, attached));
        const timer = heldUntil === undefined ? undefined : setTimeout(wake, Math.max(0, heldUntil - performance.now()));
        await Promise.race([woken, run.done, stopped]);
        clearTimeout(timer);
        for (const off of unsubscribe) off();
      } else if (!progressed && run.live) {
        // Output is complete; the task turns final once its files and status are written.
        await Promise.race([run.done, stopped]);
      } else if (!progressed) {
        await Promise.race([run.done, sleep(50)]);
      }
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    // A read still under way must end before its file closes.
    await releaseFiles();
    release();
  }
}

