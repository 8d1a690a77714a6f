import { writeSync } from "node:fs";
import { open, rm, type FileHandle } from "node:fs/promises";
import { Writable } from "node:stream";
import { isNoSpace, type SpaceGuard } from "./space-reserve.js";
import { encodeTailHeader, tailHeaderBytes } from "./tail-ring.js";

/** Spool buffers nobody holds any more, for the next batches of any spool. */
const spareBuffers: Buffer[] = [];
/** At most this many spare buffers are kept (a few MiB): the rest go to the garbage collector. */
const spareLimit = 4;
/** Memory two queued pieces share (a write cut at the head): never recycled. */
const sharedMemory = new WeakSet<ArrayBufferLike>();
/** Writes below this, arriving while the file is idle, are copied into a buffer of their own size. */
const smallWriteBytes = 64 * 1024;

/**
 * An output spool: a Writable that appends a stream's bytes to a file as they arrive,
 * counts them, and wakes readers tailing the file. Memory stays flat for any output
 * size: bytes live in the file and in the page cache, not in the node. The file is created
 * with the first byte: a command that writes nothing to a stream leaves no file (a missing
 * output file reads as empty), and costs no create, close or fsync.
 *
 * Past `capBytes` (zero: unlimited) the file keeps the first half of the cap (the head)
 * and a ring of the last half (the tail); {@link finish} stitches head and tail so the
 * file ends as head + tail, and {@link truncated} tells the result. The ring file begins
 * with a small header (see tail-ring.ts) from which a node restarted after a crash puts
 * the ring back in order.
 *
 * The cap governs what is kept, not what an attached caller receives: with a live reader
 * ({@link attachLive}), every byte past the head is also queued for it, and a write past the
 * head completes only once that queue is short again, so a slow attached caller slows the
 * command through backpressure (as ssh does) instead of losing the middle of its output.
 * Attached from the start ({@link attachLive} with `fromStart`), the reader is fed the head
 * from memory too, as each piece reaches the file, instead of reading the file back; a reader
 * that falls more than {@link liveLagBytes} behind in the head reads the file instead (it is
 * complete there) and is fed from memory again once it has caught up ({@link rejoinLive}).
 *
 * Writes are pipelined: a write is accepted (its callback called) once its bytes are copied
 * into the spool's own buffers, while up to {@link writeAheadBytes} wait for the file, so the
 * command's pipe is read again while the file is written; pieces that arrive meanwhile go to
 * the file together. A write that needs the attached reader (past the head) is accepted only
 * once it is queued for that reader, as before. A file write that fails fails the next write,
 * or the end of the stream, with its error.
 */
export class OutputSpool extends Writable {
  static {
    // What waits for the file counts as buffered: a spool with nothing buffered has every
    // accepted byte in its files, as when a write was accepted only once there.
    const base = Object.getOwnPropertyDescriptor(Writable.prototype, "writableLength")!.get!;
    Object.defineProperty(OutputSpool.prototype, "writableLength", {
      get(this: OutputSpool): number {
        return (base.call(this) as number) + this.pendingBytes;
      },
    });
  }

  /** Bytes the command wrote in all (the true count, even past the cap). */
  total = 0;
  private handle: FileHandle | undefined;
  private readonly waiters = new Set<() => void>();
  private ended = false;
  private readonly headCap: number;
  private readonly tailCap: number;
  private tailHandle: FileHandle | undefined;
  private fileSize = 0;
  /** Bytes written since the last background flush started, and that flush. */
  private unflushed = 0;
  private flushing: Promise<void> | undefined;

  /**
   * @param space - When given, the spool stores nothing while the disk is full (what room is
   *   left belongs to final statuses), and reports the disk full when a write fails for lack
   *   of space.
   */
  constructor(
    readonly path: string,
    capBytes = 0,
    private readonly space?: SpaceGuard,
  ) {
    super({ highWaterMark: 256 * 1024 });
    this.headCap = capBytes > 0 ? Math.ceil(capBytes / 2) : Number.POSITIVE_INFINITY;
    this.tailCap = capBytes > 0 ? Math.floor(capBytes / 2) : 0;
  }

  /** Bytes past the head queued for the attached reader, with their offsets in the stream. */
  private live: { offset: number; data: Buffer }[] | undefined;
  private liveBytes = 0;
  /** Writers waiting for the attached reader to take its queue. */
  private liveDrained: (() => void)[] = [];

  /** Bytes queued for the attached reader past which a write waits for it. */
  static liveQueueBytes = 1024 * 1024;

  /** True when the attached reader is fed the head from memory too, not only what is past it. */
  private liveFromStart = false;
  /** True while that reader is too far behind in the head to be fed from memory: it reads the file. */
  private liveLagging = false;
  /** The stream offset up to which each byte was either queued for the attached reader or left to the file. */
  private liveDecided = 0;

  /**
   * Bytes of the head queued for an attached reader past which it is no longer fed from
   * memory but reads the file (which is complete there): a slow caller costs the node at most
   * this much memory per stream, and never slows the command while in the head.
   */
  static liveLagBytes = 8 * 1024 * 1024;

  /** Bytes accepted but not yet in the file past which a write waits for the file. */
  static writeAheadBytes = 4 * 1024 * 1024;

  /**
   * Size of the spool's own buffers, into which accepted writes are copied; a full one is
   * one message to an attached reader. A little under a MiB: with its framing, a message of
   * one buffer still fits the MiB the protobuf encoder grows its buffer to (a whole MiB of
   * data would make it allocate and zero two).
   */
  static batchBytes = 1024 * 1024 - 256;

  /** Bytes accepted so far (in the file, or waiting for it). */
  private accepted = 0;
  /** Pieces accepted and waiting for the file, oldest first, each with the callbacks of writes it ends. */
  private readonly sealed: { data: Buffer; done: (() => void)[] }[] = [];
  /** The buffer accepted bytes are copied into, and how much of it is used. */
  private batch: Buffer | undefined;
  private batchUsed = 0;
  /** Callbacks of writes whose last bytes are in the current batch. */
  private batchDone: (() => void)[] = [];
  /** Bytes accepted and not yet in the file. */
  private pendingBytes = 0;
  /** True while the loop writing accepted pieces to the file runs. */
  private draining = false;
  /** The first file write that failed: every later write, and the end, fail with it. */
  private failure: Error | undefined;
  /** Called when the file has caught up (for writes and the end waiting for it). */
  private caughtUp: (() => void)[] = [];

  /** Bytes of the head: the first part of the stream, kept in the file at its own offsets. */
  get headBytes(): number {
    return this.headCap;
  }

  /**
   * Makes the spool keep every byte past the head for one attached reader until it takes
   * them with {@link takeLive}; with `fromStart`, every byte of the head too, while the reader
   * keeps up (see {@link liveLagBytes}). Call before the first byte is written; a later call
   * would miss the bytes already written.
   */
  attachLive(fromStart = false): void {
    if (this.live !== undefined) return;
    this.live = [];
    this.liveFromStart = fromStart;
  }

  /**
   * Tells whether the attached reader, having read the stream up to `position`, takes its
   * next bytes from {@link takeLive} (they are queued, or will be as they come) rather than
   * from the file. A reader that lagged behind and read the file rejoins the live queue here
   * once it has caught up with everything the spool has decided about.
   */
  rejoinLive(position: number): boolean {
    const queue = this.live;
    if (queue === undefined) return false;
    if (queue.length > 0) return queue[0]!.offset === position;
    if (position !== this.liveDecided) return false;
    if (position >= this.headCap) return true;
    if (!this.liveFromStart) return false;
    // Caught up: every byte up to here was read from the file, the next ones are queued.
    this.liveLagging = false;
    return true;
  }

  /** True while an attached reader is registered. */
  get attached(): boolean {
    return this.live !== undefined;
  }

  /**
   * The bytes queued for the attached reader (past the head; from the start too when it was
   * attached so), oldest first, as one chunk of at most `maxBytes` with its offset in the
   * stream, or undefined when none wait. Wakes a writer waiting for room.
   */
  takeLive(maxBytes = Number.POSITIVE_INFINITY): { offset: number; data: Buffer } | undefined {
    const queue = this.live;
    if (queue === undefined || queue.length === 0) return undefined;
    const offset = queue[0]!.offset;
    // Whole pieces up to maxBytes (at least one, cut to maxBytes): one message's worth.
    let count = 0;
    let bytes = 0;
    while (count < queue.length && (count === 0 || bytes + queue[count]!.data.length <= maxBytes)) bytes += queue[count++]!.data.length;
    const pieces = queue.splice(0, count).map((piece) => piece.data);
    let data = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, bytes);
    // Copied into one: the pieces' buffers serve later batches.
    if (pieces.length > 1) for (const piece of pieces) this.recycle(piece);
    if (data.length > maxBytes) {
      sharedMemory.add(data.buffer);
      queue.unshift({ offset: offset + maxBytes, data: data.subarray(maxBytes) });
      data = data.subarray(0, maxBytes);
    }
    this.liveBytes -= data.length;
    this.releaseWriters();
    return { offset, data };
  }

  /** Drops the attached reader (it went away): its queue is freed and writers go on. */
  detachLive(): void {
    this.live = undefined;
    this.liveBytes = 0;
    this.liveFromStart = false;
    this.releaseWriters();
  }

  /**
   * Gives back the buffer of a chunk {@link takeLive} handed out, once its reader is done with
   * it (its message is encoded): later batches are copied into it instead of into fresh memory,
   * which would drive the garbage collector through a gigabyte of it per gigabyte sent. A
   * chunk whose memory is shared, or not one of the spool's buffers, is left alone.
   */
  recycle(data: Uint8Array): void {
    const memory = data.buffer;
    if (memory.byteLength !== OutputSpool.batchBytes || sharedMemory.has(memory) || spareBuffers.length >= spareLimit) return;
    if (spareBuffers.some((spare) => spare.buffer === memory)) return;
    spareBuffers.push(Buffer.from(memory, 0, OutputSpool.batchBytes));
  }

  private releaseWriters(): void {
    const waiting = this.liveDrained;
    this.liveDrained = [];
    for (const resolve of waiting) resolve();
  }

  /** True once the output went past the cap. */
  get truncated(): boolean {
    return this.total > this.headCap + this.tailCap;
  }

  /** Bytes readable from the file now (head only while past the cap; head and tail once complete). */
  get available(): number {
    return this.ended ? this.fileSize : Math.min(this.total, this.headCap);
  }

  /** True once the writer side has finished and the file is complete. */
  get complete(): boolean {
    return this.ended;
  }

  /** The errno code of the first write that failed (e.g. ENOSPC); the output is incomplete. */
  storageError: string | undefined;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.accept(chunk, callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    for (let i = 0; i < chunks.length - 1; i++) this.accept(chunks[i]!.chunk, () => undefined);
    this.accept(chunks[chunks.length - 1]!.chunk, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    // The stream ends once every accepted byte is in the file (or failed to be).
    this.fileCaughtUp().then(() => callback(this.failure));
  }

  /**
   * Copies a write into the spool's buffers and has it written to the file. Its callback is
   * called at once while the file is less than writeAheadBytes behind and the write does not
   * need the attached reader (past the head), else once its bytes are in the file (and queued).
   */
  private accept(chunk: Buffer, callback: (error?: Error | null) => void): void {
    if (this.failure !== undefined || chunk.length === 0) {
      callback(this.failure);
      return;
    }
    const waitsForReader = this.live !== undefined && this.accepted + chunk.length > this.headCap;
    this.accepted += chunk.length;
    this.pendingBytes += chunk.length;
    if (this.batch === undefined && chunk.length < smallWriteBytes && !this.draining) {
      // A small write to an idle file is a piece of its own: a MiB buffer would be wasted on it.
      const copy = Buffer.allocUnsafe(chunk.length);
      chunk.copy(copy);
      this.sealed.push({ data: copy, done: [] });
    } else {
      for (let copied = 0; copied < chunk.length; ) {
        const batch = (this.batch ??= spareBuffers.pop() ?? Buffer.allocUnsafeSlow(OutputSpool.batchBytes));
        const n = chunk.copy(batch, this.batchUsed, copied);
        copied += n;
        this.batchUsed += n;
        if (this.batchUsed === batch.length) this.seal();
      }
    }
    if (!waitsForReader && this.pendingBytes <= OutputSpool.writeAheadBytes) callback();
    else {
      const done = (): void => callback(this.failure);
      if (this.batchUsed > 0) this.batchDone.push(done);
      else this.sealed.at(-1)!.done.push(done);
    }
    if (!this.draining) {
      this.draining = true;
      void this.drain();
    }
  }

  /** Ends the current batch: it goes to the file as one piece. */
  private seal(): void {
    if (this.batch === undefined || this.batchUsed === 0) return;
    this.sealed.push({ data: this.batch.subarray(0, this.batchUsed), done: this.batchDone });
    this.batch = undefined;
    this.batchUsed = 0;
    this.batchDone = [];
  }

  /** Writes accepted pieces to the file in order until none is left; pieces that arrive meanwhile are written together. */
  private async drain(): Promise<void> {
    for (;;) {
      if (this.sealed.length === 0) this.seal();
      const piece = this.sealed.shift();
      if (piece === undefined) break;
      if (this.failure === undefined) {
        try {
          // A piece no reader was handed is done with once in the file.
          if (!(await this.append(piece.data))) this.recycle(piece.data);
          // Backpressure past the head: a write completes once the attached reader has room
          // again (a piece that ends no waiting write is in the head, or mid-write).
          while (piece.done.length > 0 && this.live !== undefined && this.total > this.headCap && this.liveBytes >= OutputSpool.liveQueueBytes) {
            await new Promise<void>((resolve) => this.liveDrained.push(resolve));
          }
        } catch (error) {
          this.failure = this.failed(error);
        }
      }
      this.pendingBytes -= piece.data.length;
      for (const done of piece.done) done();
    }
    this.draining = false;
    for (const resolve of this.caughtUp.splice(0)) resolve();
  }

  /** Resolves once every accepted byte has been written to the file (or failed to be). */
  private fileCaughtUp(): Promise<void> {
    if (!this.draining) return Promise.resolve();
    return new Promise((resolve) => this.caughtUp.push(resolve));
  }

  private failed(error: unknown): Error {
    this.storageError ??= (error as NodeJS.ErrnoException).code ?? "EIO";
    if (isNoSpace(error)) this.space?.markFull(this.storageError, `writing ${this.path.slice(this.path.lastIndexOf("/") + 1)}`);
    return error as Error;
  }

  /** Writes one piece to the files (head, tail ring) and queues it for the attached reader; true when any of it was queued. */
  private async append(chunk: Buffer): Promise<boolean> {
    if (this.space?.full === true) {
      // Another write found the disk full: this output stops here too, as if its own had.
      throw Object.assign(new Error("the disk is full"), { code: "ENOSPC" });
    }
    // Writes come one at a time (Writable), so the file is opened once.
    const handle = (this.handle ??= await open(this.path, "w", 0o600));
    let data = chunk;
    let queued = false;
    const headRoom = this.headCap - Math.min(this.total, this.headCap);
    if (headRoom > 0) {
      const head = data.subarray(0, Math.min(headRoom, data.length));
      // Counted as written: a write the disk cut short leaves its first bytes in the file,
      // and the stored size the result reports must be the file's.
      const headAt = this.total;
      await writeAll(handle, head, this.total, (bytes) => (this.total += bytes));
      data = data.subarray(head.length);
      if (this.live !== undefined && this.liveFromStart && !this.liveLagging) {
        // Fed from memory while it keeps up; past the bound it reads these bytes from the file.
        if (this.liveBytes + head.length > OutputSpool.liveLagBytes) this.liveLagging = true;
        else {
          this.live.push({ offset: headAt, data: head });
          this.liveBytes += head.length;
          queued = true;
        }
      }
      this.liveDecided = headAt + head.length;
    }
    if (data.length > 0 && this.tailCap > 0) {
      // The tail is a ring: position (offset past the head) modulo its size.
      this.tailHandle ??= await open(`${this.path}.tail`, "w+", 0o600);
      // The header says which ring bytes this write may leave half replaced if the node dies
      // during it, then that they are certain. Synchronous: 40 bytes in the page cache take
      // microseconds, against two thread pool round trips per chunk.
      const end = this.total + data.length;
      const header = (committedTotal: number): void => {
        const bytes = encodeTailHeader({ headBytes: this.headCap, ringBytes: this.tailCap, committedTotal, pendingTotal: end });
        writeSync(this.tailHandle!.fd, bytes, 0, bytes.length, 0);
      };
      header(this.total);
      let rest = data.length > this.tailCap ? data.subarray(data.length - this.tailCap) : data;
      let pos = (this.total + (data.length - rest.length) - this.headCap) % this.tailCap;
      while (rest.length > 0) {
        const n = Math.min(rest.length, this.tailCap - pos);
        await writeAll(this.tailHandle, rest.subarray(0, n), tailHeaderBytes + pos);
        rest = rest.subarray(n);
        pos = (pos + n) % this.tailCap;
      }
      header(end);
    }
    const offset = this.total;
    this.total += data.length;
    this.unflushed += chunk.length;
    if (this.unflushed >= OutputSpool.flushEveryBytes && this.flushing === undefined) this.flushInBackground();
    if (data.length > 0 && this.live !== undefined) {
      // The spool's own copy (see accept): no writer reuses it.
      // Two pieces of one buffer (cut at the head) are never recycled: one reader's done with the first while the second waits.
      if (queued) sharedMemory.add(chunk.buffer);
      this.live.push({ offset, data });
      this.liveBytes += data.length;
      this.liveDecided = offset + data.length;
      queued = true;
    }
    this.wakeSoon(chunk.length);
    return queued;
  }

  /** Bytes appended since readers were last woken, and the timer that will wake them. */
  private unwoken = 0;
  private wakeTimer: NodeJS.Timeout | undefined;

  /** Readers are woken at once when this much arrived since the last wake... */
  static wakeEveryBytes = 1024 * 1024;
  /** ...and otherwise this many ms after the first byte they have not been woken for. */
  static wakeDelayMs = 2;

  /**
   * Wakes readers for new bytes, a little later when there are few: a command writes its
   * pipe 64 KiB at a time, and a reader woken for each write sends that many bytes per
   * message, paying a message's costs (encoding, framing, garbage) per 64 KiB instead of per
   * MiB. Each wake comes at most {@link wakeDelayMs} later (a follower also holds back a
   * few bytes that long itself, see streamOutput: a few ms in all).
   */
  private wakeSoon(bytes: number): void {
    if (this.waiters.size === 0) return;
    this.unwoken += bytes;
    if (this.unwoken >= OutputSpool.wakeEveryBytes) this.wakeNow();
    else this.wakeTimer ??= setTimeout(() => this.wakeNow(), OutputSpool.wakeDelayMs);
  }

  private wakeNow(): void {
    clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    this.unwoken = 0;
    this.wake();
  }

  /** Background flushes started so far. */
  flushes = 0;

  /** Output written between two background flushes. */
  static flushEveryBytes = 64 * 1024 * 1024;

  /**
   * Starts writing the output so far to disk without waiting for it: the task's final status
   * is durable only once its output is, and a large output flushed as it comes leaves that
   * last fsync little to do, instead of all of it at once when the task ends. A failure is
   * left to that last fsync, which reports it.
   */
  private flushInBackground(): void {
    this.unflushed = 0;
    this.flushes++;
    const handles = [this.handle, this.tailHandle].filter((handle) => handle !== undefined);
    this.flushing = Promise.all(handles.map((handle) => handle.datasync()))
      .catch(() => undefined) // A failed background sync is left to the final fsync, which reports it.
      .then(() => {
        this.flushing = undefined;
      });
  }

  /**
   * Completes the file: stitches the tail ring after the head when the cap was passed,
   * and closes (the store's durable status write fsyncs it). Safe to call once the writer side ended.
   */
  async finish(): Promise<void> {
    if (this.ended) return;
    await this.fileCaughtUp();
    await this.flushing;
    const handle = this.handle;
    if (handle !== undefined) {
      if (this.tailHandle !== undefined) {
        const tailBytes = Math.min(this.total - this.headCap, this.tailCap);
        const start = tailBytes < this.tailCap ? 0 : (this.total - this.headCap) % this.tailCap;
        // Copied in pieces: a tail as large as the cap (128 MiB by default) must not pass
        // through memory at once.
        const piece = Buffer.allocUnsafe(Math.min(tailBytes, 1024 * 1024));
        let written = 0;
        for (const [from, to] of [[start, tailBytes], [0, start]] as const) {
          for (let offset = from; offset < to; ) {
            const { bytesRead } = await this.tailHandle.read(piece, 0, Math.min(piece.length, to - offset), tailHeaderBytes + offset);
            if (bytesRead === 0) break;
            await writeAll(handle, piece.subarray(0, bytesRead), this.headCap + written);
            offset += bytesRead;
            written += bytesRead;
          }
        }
        await this.tailHandle.close();
        await rm(`${this.path}.tail`, { force: true });
      }
      // No fsync here: the task's durable final status write fsyncs its output first.
      await handle.close();
    }
    this.fileSize = Math.min(this.total, this.headCap + this.tailCap);
    this.ended = true;
    this.wakeNow();
  }

  /**
   * Calls `listener` once, when more bytes arrive or the spool completes (at once when it is
   * complete already, or when `live` and the attached reader's queue holds bytes); returns a
   * function that unsubscribes it. Unlike {@link changed} it leaves nothing behind when the
   * caller stops waiting for another reason.
   */
  subscribe(listener: () => void, live = false): () => void {
    // The attached reader (`live`) is called at once while its queue holds bytes: a writer
    // waiting for it to take them would otherwise never write again to wake it.
    if (this.ended || (live && this.liveBytes > 0)) {
      listener();
      return () => undefined;
    }
    const once = (): void => {
      this.waiters.delete(once);
      listener();
    };
    this.waiters.add(once);
    return () => this.waiters.delete(once);
  }

  /** Resolves when more bytes arrive or the spool completes. */
  changed(signal?: AbortSignal): Promise<void> {
    if (this.ended || signal?.aborted === true) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      this.waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

async function writeAll(handle: FileHandle, data: Uint8Array, position: number, written?: (bytes: number) => void): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset, position + offset);
    offset += bytesWritten;
    written?.(bytesWritten);
  }
}
