import { writeSync } from "node:fs";
import { open, rm, type FileHandle } from "node:fs/promises";
import { Writable } from "node:stream";
import { isNoSpace, type SpaceGuard } from "./space-reserve.js";
import { encodeTailHeader, tailHeaderBytes } from "./tail-ring.js";

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
 */
export class OutputSpool extends Writable {
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

  /** Bytes of the head: the first part of the stream, kept in the file at its own offsets. */
  get headBytes(): number {
    return this.headCap;
  }

  /**
   * Makes the spool keep every byte past the head for one attached reader until it takes
   * them with {@link takeLive}. Call before the first byte is written; a later call would
   * miss the bytes already past the head.
   */
  attachLive(): void {
    this.live ??= [];
  }

  /** True while an attached reader is registered. */
  get attached(): boolean {
    return this.live !== undefined;
  }

  /**
   * The bytes past the head queued for the attached reader, oldest first, as one chunk with
   * its offset in the stream, or undefined when none wait. Wakes a writer waiting for room.
   */
  takeLive(): { offset: number; data: Buffer } | undefined {
    const queue = this.live;
    if (queue === undefined || queue.length === 0) return undefined;
    const offset = queue[0]!.offset;
    const data = queue.length === 1 ? queue[0]!.data : Buffer.concat(queue.map((piece) => piece.data), this.liveBytes);
    queue.length = 0;
    this.liveBytes = 0;
    this.releaseWriters();
    return { offset, data };
  }

  /** Drops the attached reader (it went away): its queue is freed and writers go on. */
  detachLive(): void {
    this.live = undefined;
    this.liveBytes = 0;
    this.releaseWriters();
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
    this.append(chunk).then(() => callback(), (error: unknown) => callback(this.failed(error)));
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.append(Buffer.concat(chunks.map((c) => c.chunk))).then(() => callback(), (error: unknown) => callback(this.failed(error)));
  }

  private failed(error: unknown): Error {
    this.storageError ??= (error as NodeJS.ErrnoException).code ?? "EIO";
    if (isNoSpace(error)) this.space?.markFull(this.storageError, `writing ${this.path.slice(this.path.lastIndexOf("/") + 1)}`);
    return error as Error;
  }

  private async append(chunk: Buffer): Promise<void> {
    if (this.space?.full === true) {
      // Another write found the disk full: this output stops here too, as if its own had.
      throw Object.assign(new Error("the disk is full"), { code: "ENOSPC" });
    }
    // Writes come one at a time (Writable), so the file is opened once.
    const handle = (this.handle ??= await open(this.path, "w", 0o600));
    let data = chunk;
    const headRoom = this.headCap - Math.min(this.total, this.headCap);
    if (headRoom > 0) {
      const head = data.subarray(0, Math.min(headRoom, data.length));
      // Counted as written: a write the disk cut short leaves its first bytes in the file,
      // and the stored size the result reports must be the file's.
      await writeAll(handle, head, this.total, (bytes) => (this.total += bytes));
      data = data.subarray(head.length);
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
      // Copied: the writer reuses its buffer once this write completes.
      this.live.push({ offset, data: Buffer.from(data) });
      this.liveBytes += data.length;
      this.wakeSoon(chunk.length);
      // Backpressure: the write completes once the attached reader has room again.
      while (this.live !== undefined && this.liveBytes >= OutputSpool.liveQueueBytes) {
        await new Promise<void>((resolve) => this.liveDrained.push(resolve));
      }
      return;
    }
    this.wakeSoon(chunk.length);
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
