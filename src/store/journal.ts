import { closeSync, fdatasync, fsync, ftruncateSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statfsSync, writeSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { crc32 } from "node:zlib";
import { frameBytes, headerBytes, magic, maxRecordBytes, readSegment, readWhole, segmentName, segmentPattern, sequenceBytes, spareName } from "./journal-segment.js";

export { readSegment } from "./journal-segment.js";

const fdatasyncAsync = promisify(fdatasync);
const fsyncAsync = promisify(fsync);

/** Options of {@link openJournal}. */
export interface JournalOptions {
  /** The directory of the journal's segment files; made when missing. */
  readonly dir: string;
  /**
   * The size a segment is filled to before the next one begins, in bytes. A record larger
   * than a whole segment gets a segment of its own, grown past this size. Default 4 MiB.
   */
  readonly segmentBytes?: number;
  /**
   * Whether a new segment is written with zeros (and made durable) before records go into
   * it, so that a record's fdatasync writes data blocks only: no size or extent change for
   * the file system to commit as well. Default true.
   */
  readonly preallocate?: boolean;
}

/**
 * An append-only journal of records, kept in segment files and made durable by group
 * commit: every record written while an fdatasync runs is made durable by the next single
 * fdatasync, so many callers share each wait for the disk. Each record is framed with its
 * length and a CRC-32 (over the segment's number and the record), so a torn or stale tail is
 * found and ignored when the journal is read back, never misread.
 */
export interface Journal {
  /**
   * The records the journal held when it was opened, oldest first: every record that was
   * acknowledged durable, and possibly later ones that reached the disk unacknowledged.
   */
  replay(): readonly Uint8Array[];
  /**
   * Appends a record (not empty); resolves once it is durable. The record is written to the
   * segment file at once (a crash of the process after this call returns keeps it, the page
   * cache holds it), then made durable with every other record of its group.
   */
  append(record: Uint8Array): Promise<void>;
  /**
   * Retires what the journal holds so far: the records appended from now on go to a new
   * segment; `flush` is called to make durable whatever the older records describe (their
   * owner's own files); once it resolves, the older segments are retired. A failed `flush`
   * retires nothing (its error is the promise's). One checkpoint runs at a time; a call
   * while one runs waits for it, then runs its own.
   */
  checkpoint(flush: () => Promise<void>): Promise<void>;
  /** The bytes of records held in segments not retired yet (those read at open included). */
  readonly liveBytes: number;
  /** The number of segment files not retired yet, the one being written included. */
  readonly segmentCount: number;
  /** The number of group commits (fdatasync rounds) run since the journal was opened. */
  readonly commits: number;
  /** Waits for the records in flight to be durable, then closes the segment files. */
  close(): Promise<void>;
}

/** A journal's failure to write or sync its segment files; the record it concerns is not durable. */
export class JournalError extends Error {
  override name = "JournalError";
  /** The system error's code (ENOSPC, EIO, ...) when a system call failed. */
  readonly code: string | undefined;
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = options?.code;
  }
}

/** The bytes free for this process on the file system of `path` (unbounded when it cannot be told). */
function roomFor(path: string): number {
  try {
    const fs = statfsSync(path);
    return fs.bavail * fs.bsize;
  } catch {
    // No statfs here: the zeros are tried, and given up at the first short write.
    return Number.POSITIVE_INFINITY;
  }
}

/** Whether a system call failed for lack of room (the disk or the quota). */
function isNoRoom(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOSPC" || code === "EDQUOT";
}

/** A segment being written or waiting to be retired. */
interface Segment {
  readonly sequence: number;
  readonly path: string;
  fd: number | undefined;
  /** Where the next frame goes. */
  offset: number;
  /** Bytes of records in it. */
  bytes: number;
  /** The CRC-32 of its number, where each of its frames' checksums starts. */
  readonly seed: number;
}

/** One group of records waiting for the same fdatasync. */
interface Group {
  readonly segments: Set<Segment>;
  readonly waiters: { resolve: () => void; reject: (error: Error) => void }[];
}

/**
 * Opens (or makes) the journal in `options.dir`: reads every segment's records back in
 * order, then begins a new segment for the records appended from now on (a segment's tail
 * may be torn: it is never written after its process ended).
 */
export function openJournal(options: JournalOptions): Journal {
  const segmentBytes = options.segmentBytes ?? 4 * 1024 * 1024;
  if (!Number.isInteger(segmentBytes) || segmentBytes < 4096) throw new RangeError(`segmentBytes must be an integer of at least 4096, not ${segmentBytes}`);
  const preallocate = options.preallocate ?? true;
  const dir = options.dir;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  rmSync(join(dir, `${spareName}.tmp`), { force: true });

  const found = readdirSync(dir)
    .map((name) => segmentPattern.exec(name))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => Number(match[1]))
    .sort((a, b) => a - b);
  const recovered: Uint8Array[] = [];
  const live: Segment[] = [];
  for (const sequence of found) {
    const path = join(dir, segmentName(sequence));
    const { records, bytes } = readSegment(readWhole(path), sequence);
    recovered.push(...records);
    live.push({ sequence, path, fd: undefined, offset: headerBytes + bytes, bytes, seed: 0 });
  }

  const syncDir = async (): Promise<void> => {
    const fd = openSync(dir, "r");
    try {
      await fsyncAsync(fd);
    } finally {
      closeSync(fd);
    }
  };

  /**
   * Makes the file of a new segment: a retired segment kept as the spare is renamed to it
   * (its blocks are allocated already; its old frames fail the new number's checksum), else
   * a new file, written with zeros when preallocating (on a disk without room for them, it
   * grows as records come instead). Synchronous: it happens when a segment fills, once per
   * megabytes of records.
   */
  let nextSequence = (found.at(-1) ?? 0) + 1;
  const makeSegment = (): Segment => {
    const sequence = nextSequence++;
    const path = join(dir, segmentName(sequence));
    const header = Buffer.alloc(headerBytes);
    magic.copy(header);
    header.writeBigUInt64LE(BigInt(sequence), 8);
    let reused = false;
    try {
      renameSync(join(dir, spareName), path);
      reused = true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
    const fd = openSync(path, reused ? "r+" : "w+", 0o600);
    try {
      // Zeros only where they leave the disk room for far more than themselves: a segment
      // must not take the last free space (the task store's reserve is kept for statuses).
      if (!reused && preallocate && roomFor(dir) >= 8 * segmentBytes) {
        const zeros = Buffer.alloc(Math.min(segmentBytes, 1024 * 1024));
        try {
          for (let at = 0; at < segmentBytes; ) {
            const wrote = writeSync(fd, zeros, 0, Math.min(zeros.length, segmentBytes - at), at);
            // A short write is the disk filling up.
            if (wrote < Math.min(zeros.length, segmentBytes - at)) throw Object.assign(new Error("ENOSPC: the disk filled up"), { code: "ENOSPC" });
            at += wrote;
          }
        } catch (error) {
          if (!isNoRoom(error)) throw error;
          ftruncateSync(fd, 0);
        }
      }
      writeSync(fd, header, 0, headerBytes, 0);
    } catch (error) {
      closeSync(fd);
      rmSync(path, { force: true });
      throw error;
    }
    return { sequence, path, fd, offset: headerBytes, bytes: 0, seed: crc32(sequenceBytes(sequence)) };
  };

  // The segment records go to; undefined until one could be made (a full disk at open: the
  // first append makes it, or fails with the disk's error).
  let current: Segment | undefined;
  // What the next group commit waits for besides its fdatasyncs: the new segments' names
  // and (when preallocated) their zeros made durable.
  let ready: Promise<void> | undefined;
  /** Makes a new segment the current one; the one before it is closed once its records are durable. */
  const begin = (): Segment => {
    const next = makeSegment();
    if (current !== undefined) toClose.add(current);
    live.push(next);
    const made = next.fd !== undefined ? fdatasyncAsync(next.fd) : undefined;
    const named = Promise.all([made, syncDir()]).then(() => undefined);
    ready = ready === undefined ? named : Promise.all([ready, named]).then(() => undefined);
    ready.catch(() => undefined); // its failure is reported by the next group commit, which waits for it
    current = next;
    return next;
  };
  // Segments filled (or sealed by a checkpoint) whose fd stays open until a group commit
  // that covers their last records has run.
  const toClose = new Set<Segment>();
  try {
    begin();
  } catch (error) {
    // A disk without room for a segment still opens: the first append tries again.
    if (!isNoRoom(error)) throw error;
  }
  const liveBytes = (): number => live.reduce((sum, segment) => sum + segment.bytes, 0);

  let waiting: Group = { segments: new Set(), waiters: [] };
  let syncing = false;
  let scheduled = false;
  let closed = false;
  /** Set once close resolved: no checkpoint touches the segments after that. */
  let shut = false;
  let idle: (() => void) | undefined;
  let lastDurable: Promise<void> = Promise.resolve();
  let commits = 0;

  const commit = async (): Promise<void> => {
    scheduled = false;
    if (syncing) return;
    if (waiting.waiters.length === 0) {
      idle?.();
      return;
    }
    syncing = true;
    commits++;
    const group = waiting;
    waiting = { segments: new Set(), waiters: [] };
    try {
      const before = ready;
      ready = undefined;
      await Promise.all([before, ...[...group.segments].map((segment) => (segment.fd !== undefined ? fdatasyncAsync(segment.fd) : undefined))]);
      for (const waiter of group.waiters) waiter.resolve();
    } catch (error) {
      const failed = failure("make records durable", error);
      for (const waiter of group.waiters) waiter.reject(failed);
    } finally {
      syncing = false;
      closeRetired();
      // Every record written while this fdatasync ran waits for the next one, which starts now.
      if (waiting.waiters.length > 0) void commit();
      else idle?.();
    }
  };

  const closeRetired = (): void => {
    for (const segment of toClose) {
      if (waiting.segments.has(segment) || segment.fd === undefined) continue;
      closeSync(segment.fd);
      segment.fd = undefined;
      toClose.delete(segment);
    }
  };

  const failure = (what: string, error: unknown): JournalError => {
    const code = (error as NodeJS.ErrnoException).code ?? "EIO";
    return new JournalError(`the journal could not ${what} in ${dir} (${code})`, { cause: error, code });
  };

  const append = (record: Uint8Array): Promise<void> => {
    if (closed) return Promise.reject(new JournalError("the journal is closed"));
    if (record.length === 0) return Promise.reject(new RangeError("a journal record cannot be empty"));
    if (record.length > maxRecordBytes) return Promise.reject(new RangeError(`a journal record cannot exceed ${maxRecordBytes} bytes`));
    let segment: Segment;
    try {
      segment = current === undefined || (current.offset + frameBytes + record.length > segmentBytes && current.bytes > 0) ? begin() : current;
    } catch (error) {
      return Promise.reject(failure("begin a segment", error));
    }
    const frame = Buffer.allocUnsafe(frameBytes + record.length);
    frame.writeUInt32LE(record.length, 0);
    frame.writeUInt32LE(crc32(record, segment.seed), 4);
    frame.set(record, frameBytes);
    try {
      // A write into the page cache: microseconds, and kept by the OS if the process dies.
      // A write that fails leaves the offset where it was: the next record overwrites it.
      for (let done = 0; done < frame.length; ) done += writeSync(segment.fd!, frame, done, frame.length - done, segment.offset + done);
    } catch (error) {
      return Promise.reject(failure("write a record", error));
    }
    segment.offset += frame.length;
    segment.bytes += frame.length;
    const durable = new Promise<void>((resolve, reject) => {
      waiting.segments.add(segment);
      waiting.waiters.push({ resolve, reject });
      // The commit starts after the records of this turn of the event loop are written, so
      // that a burst of appends (one network read's worth of calls) shares its first wait too.
      if (!scheduled && !syncing) {
        scheduled = true;
        setImmediate(() => void commit());
      }
    });
    lastDurable = durable.catch(() => undefined); // its failure is its appender's; a checkpoint only waits for it to settle
    return durable;
  };

  let checkpointing: Promise<void> = Promise.resolve();
  // Segments a checkpoint has taken to retire (a later checkpoint leaves them to it).
  const claimed = new Set<Segment>();
  const checkpoint = (flush: () => Promise<void>): Promise<void> => {
    // Once closed, the files are left as they are: the next start replays what is in them.
    if (shut) return Promise.resolve();
    // The segments are sealed at the call: what was appended before it is what `flush`
    // must have made durable, and what is appended after it goes to the new segment.
    if (current !== undefined && current.bytes > 0) {
      // The next append begins a new segment (made then: on a full disk, this may fail).
      toClose.add(current);
      current = undefined;
    }
    const sealed = live.filter((segment) => segment !== current && !claimed.has(segment));
    for (const segment of sealed) claimed.add(segment);
    const appended = lastDurable;
    const run = async (): Promise<void> => {
      if (sealed.length === 0) return;
      try {
        // The sealed segments' records are made durable first: a record is retired only
        // once it has been durable in the journal, and then in what `flush` wrote.
        await appended;
        await flush();
        // Oldest first: a crash between two removals leaves only later segments, whose
        // replay over the flushed state is harmless.
        for (const segment of sealed) {
          // Its records are durable (awaited above): nothing writes or syncs it any more.
          if (segment.fd !== undefined) closeSync(segment.fd);
          segment.fd = undefined;
          let spared = false;
          if (preallocate) {
            // The last retired segment is kept to become the next one: its blocks stay allocated.
            renameSync(segment.path, join(dir, spareName));
            spared = true;
          }
          if (!spared) rmSync(segment.path, { force: true });
          live.splice(live.indexOf(segment), 1);
          toClose.delete(segment);
        }
        await syncDir();
      } finally {
        for (const segment of sealed) claimed.delete(segment);
      }
    };
    const next = checkpointing.then(run, run);
    checkpointing = next.catch(() => undefined); // the failure is this call's; the next checkpoint runs after it either way
    return next;
  };

  return {
    replay: () => recovered,
    append,
    checkpoint,
    get liveBytes() {
      return liveBytes();
    },
    get segmentCount() {
      return live.length;
    },
    get commits() {
      return commits;
    },
    async close() {
      closed = true;
      if (syncing || scheduled || waiting.waiters.length > 0) await new Promise<void>((resolve) => (idle = resolve));
      // A checkpoint asked for while an earlier one ran is chained behind it: wait until no
      // new one was chained, so that nothing renames or removes a segment once close resolved.
      for (let pending = checkpointing; ; pending = checkpointing) {
        await pending;
        if (pending === checkpointing) break;
      }
      shut = true;
      for (const segment of live) {
        if (segment.fd !== undefined) closeSync(segment.fd);
        segment.fd = undefined;
      }
      toClose.clear();
    },
  };
}
