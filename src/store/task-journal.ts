import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type { TaskStatus } from "../domain/task.js";
import { syncPath } from "./atomic.js";
import { openJournal, type Journal } from "./journal.js";

const execFileAsync = promisify(execFile);

/** What a task-state record says; its JSON is what the journal holds. */
export type TaskJournalRecord =
  /** A task was accepted: its request (as `request.json` holds it) and first status. */
  | { readonly kind: "accepted"; readonly request: unknown; readonly status: TaskStatus }
  /** A task's status changed. */
  | { readonly kind: "status"; readonly status: TaskStatus }
  /** A task was deleted: a replay must not bring it back. */
  | { readonly kind: "deleted"; readonly id: string };

/** A task's last journaled state, after a replay. */
export type ReplayedTask =
  | { readonly deleted: false; readonly status: TaskStatus; readonly request: unknown }
  | { readonly deleted: true };

/** Options of {@link createTaskJournal}. */
export interface TaskJournalOptions {
  /** The node's data directory: the journal lives in `<dataDir>/journal/`. */
  readonly dataDir: string;
  /** The tasks root directory, whose file system a checkpoint makes durable. */
  readonly root: string;
  /** Journal bytes past which a checkpoint starts (default 8 MiB). */
  readonly checkpointBytes?: number | undefined;
  /** The longest a record waits for its checkpoint, in ms (default 10 s). */
  readonly checkpointDelayMs?: number;
  /** Where a failed background checkpoint is reported (the segments are kept for the next one). */
  readonly onError?: ((error: unknown) => void) | undefined;
  /**
   * Test-only crash hook: "compacting" stops the process dead once a checkpoint has made
   * the task directories durable, before it retires a segment.
   */
  readonly crashAt?: string | undefined;
}

/**
 * The task store's journal: a task's acceptance, each of its statuses and its deletion are
 * records, durable by group commit (see journal.ts), while the task's directory is written
 * at once without fsyncs (readers and a restarted process find it as before). A checkpoint,
 * in the background, waits for the writes the sealed records describe, makes the file
 * system durable in one sync, and only then retires the segments.
 */
export interface TaskJournal {
  /**
   * The journal's records from before this process, folded per task: the last state of
   * each task it names. Empty after the first call: they are applied once, at start-up.
   */
  takeReplay(): Map<string, ReplayedTask>;
  /**
   * Appends a record; resolves once it is durable. The status's and request's JSON, when
   * given, are spliced in as they are (the store has them made for the files).
   */
  append(record: TaskJournalRecord, statusJson?: string, requestJson?: string): Promise<void>;
  /**
   * Tells the next checkpoint to wait for a write to a task's directory that a record
   * describes (its files renamed into place, its directory removed) before it syncs, and
   * the paths that write changes (fsynced one by one where syncfs is missing).
   */
  applying(write: Promise<unknown>, paths: readonly string[]): void;
  /** Makes what every record so far describes durable, then retires their segments. */
  checkpoint(): Promise<void>;
  /** Stops the background checkpoints and closes the journal. */
  close(): Promise<void>;
}

/** The records' JSON, one per record, the status JSON spliced in as written for the file. */
export function encodeTaskRecord(record: TaskJournalRecord, statusJson?: string, requestJson?: string): Buffer {
  switch (record.kind) {
    case "accepted":
      return Buffer.from(`{"kind":"accepted","request":${requestJson ?? JSON.stringify(record.request)},"status":${statusJson ?? JSON.stringify(record.status)}}`);
    case "status":
      return Buffer.from(`{"kind":"status","status":${statusJson ?? JSON.stringify(record.status)}}`);
    case "deleted":
      return Buffer.from(JSON.stringify(record));
  }
}

/** Folds records, oldest first, into each task's last state; a record that does not parse is skipped. */
export function foldTaskRecords(records: readonly Uint8Array[]): Map<string, ReplayedTask> {
  const tasks = new Map<string, ReplayedTask>();
  for (const bytes of records) {
    let record: TaskJournalRecord;
    try {
      record = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8")) as TaskJournalRecord;
    } catch {
      // A checksum-valid record that is not JSON was not written by this store: nothing to apply.
      continue;
    }
    if (record.kind === "deleted") tasks.set(record.id, { deleted: true });
    else if (record.kind === "accepted") tasks.set(record.status.id, { deleted: false, status: record.status, request: record.request });
    else if (record.kind === "status") {
      const known = tasks.get(record.status.id);
      tasks.set(record.status.id, { deleted: false, status: record.status, request: known !== undefined && !known.deleted ? known.request : undefined });
    }
  }
  return tasks;
}

/**
 * Makes the file system that holds `root` durable: syncfs(2), through `sync --file-system`
 * (one call for every file a checkpoint covers, where an fsync each would take the thread
 * pool from the journal's own fdatasyncs for seconds); else each path, one at a time.
 */
async function syncFileSystem(root: string, paths: () => Iterable<string>): Promise<void> {
  try {
    await execFileAsync("sync", ["--file-system", root], { timeout: 600_000 });
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // Only a missing `sync` (or one without --file-system) falls back; a failing sync is a failure.
    if (code !== "ENOENT" && !/unrecognized option|invalid option/.test(String((error as { stderr?: unknown }).stderr ?? ""))) throw error;
  }
  for (const path of paths()) await syncPath(path);
}

/** Opens the task journal in `<dataDir>/journal/` and starts its background checkpoints. */
export function createTaskJournal(options: TaskJournalOptions): TaskJournal {
  const journal: Journal = openJournal({ dir: join(options.dataDir, "journal") });
  const checkpointBytes = options.checkpointBytes ?? 8 * 1024 * 1024;
  const checkpointDelayMs = options.checkpointDelayMs ?? 10_000;
  let replay: Map<string, ReplayedTask> | undefined = foldTaskRecords(journal.replay());
  // Writes the sealed records describe that may still be under way.
  const inFlight = new Set<Promise<unknown>>();
  // The directories and files written since the last checkpoint began (for a file system
  // without syncfs: what to fsync one by one).
  let touched = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closed = false;

  const checkpoint = (): Promise<void> => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const writes = [...inFlight];
    const paths = touched;
    touched = new Set();
    const run = journal.checkpoint(async () => {
      await Promise.allSettled(writes);
      await syncFileSystem(options.root, () => paths);
      if (options.crashAt === "compacting") process.kill(process.pid, "SIGKILL");
    });
    running = run.finally(() => {
      running = undefined;
      schedule();
    });
    running.catch(() => undefined); // the caller of checkpoint() gets the failure; the background's goes to onError
    return run;
  };

  const schedule = (): void => {
    if (closed || running !== undefined) return;
    if (journal.liveBytes >= checkpointBytes) {
      void checkpoint().catch((error: unknown) => options.onError?.(error));
      return;
    }
    if (timer === undefined && journal.liveBytes > 0) {
      timer = setTimeout(() => void checkpoint().catch((error: unknown) => options.onError?.(error)), checkpointDelayMs);
      timer.unref();
    }
  };

  return {
    takeReplay() {
      const taken = replay ?? new Map<string, ReplayedTask>();
      replay = undefined;
      return taken;
    },
    append(record, statusJson, requestJson) {
      const appended = journal.append(encodeTaskRecord(record, statusJson, requestJson));
      schedule();
      return appended;
    },
    applying(write, paths) {
      inFlight.add(write);
      const done = (): void => void inFlight.delete(write);
      write.then(done, done);
      for (const path of paths) touched.add(path);
    },
    checkpoint,
    async close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      await running?.catch(() => undefined); // a failed checkpoint leaves its segments for the next start's replay
      await journal.close();
    },
  };
}
