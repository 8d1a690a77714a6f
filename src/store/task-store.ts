import { statfsSync } from "node:fs";
import { mkdir, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import type { StoredSpec } from "../domain/spec-json.js";
import type { FileResult, StreamName, TaskStatus } from "../domain/task.js";
import type { KeptOutput } from "../domain/view.js";
import { createCrashHook } from "./crash-hook.js";
import { createDirectTaskWrites } from "./direct-task-writes.js";
import { createJournaledTaskWrites } from "./journaled-task-writes.js";
import { noSpaceReserve, type SpaceReserve } from "./space-reserve.js";
import type { OutputSpool } from "./spool.js";
import { createStorageGuard } from "./storage-guard.js";
import type { MergedTail } from "./tail-ring.js";
import { createTaskJournal, type TaskJournal } from "./task-journal.js";
import { createTaskLayout, type TaskStorePaths } from "./task-layout.js";
import { loadTasks } from "./task-store-load.js";
import { createTaskReads } from "./task-reads.js";

export type { TaskStorePaths } from "./task-layout.js";

/** What `request.json` holds: the redacted request and its digest. */
export interface StoredRequest {
  readonly digest: string;
  readonly spec: StoredSpec;
}

/** A task as loaded from disk at start-up. */
export interface LoadedTask {
  readonly status: TaskStatus;
  /** Its request; undefined when it cannot be read, or when it was not asked for (see {@link LoadOptions}). */
  readonly request: StoredRequest | undefined;
}

/** Options of {@link TaskStore.load}. */
export interface LoadOptions {
  /**
   * Which tasks' requests are read: every task's (the default), or only those of tasks that
   * are not final, which recovery needs; a final task's request is then read when it is
   * asked for ({@link TaskStore.readRequestNow}).
   */
  readonly requests?: "all" | "unfinished";
}

/** Options of {@link createTaskStore}. */
export interface TaskStoreOptions {
  /** The node's data directory; tasks live in `<dataDir>/tasks/<id>/`. */
  readonly dataDir: string;
  /**
   * Test-only crash hook: when set, `process.exit(137)`-like abrupt stop at the named
   * write point ("accepted", "spawned", "final"), to test recovery. Never set in production.
   */
  readonly crashAt?: string | undefined;
  /**
   * The room kept on the data directory's disk for status writes (see space-reserve.ts),
   * which a status write that failed for lack of space takes a piece of before it retries.
   * Default: none (such a write fails).
   */
  readonly space?: SpaceReserve | undefined;
  /**
   * Whether task states are kept durable by the journal in `<dataDir>/journal/` (see
   * task-journal.ts): a task's acceptance and each status are journal records made durable
   * by group commit, the task's directory is written without fsyncs and made durable in bulk
   * by the journal's checkpoints. Otherwise every JSON write is its own durable atomic write.
   * Default false.
   */
  readonly journal?: boolean;
  /** Journal bytes past which a checkpoint starts (see task-journal.ts); default 8 MiB. */
  readonly journalCheckpointBytes?: number | undefined;
  /** Where a failure of the journal's background checkpoint is reported. */
  readonly onJournalError?: ((error: unknown) => void) | undefined;
}

/**
 * The on-disk task store: a directory per task holding `request.json`, `status.json`,
 * `stdout`, `stderr`, returned files under `files/`, and the default working directory
 * `work/`. Every JSON write is atomic (temp file, rename); a durable one also fsyncs the
 * file and its directory, and directory fsyncs of concurrent writes are shared. With the
 * journal ({@link TaskStoreOptions.journal}), a durable write is a journal record instead,
 * and the directory is written without fsyncs and made durable by the journal's checkpoints.
 */
export interface TaskStore {
  /** The tasks root directory. */
  readonly root: string;
  /**
   * The room kept for final statuses on the data directory's disk, and whether that disk
   * is full (then new tasks are refused and output is no longer stored).
   */
  readonly space: SpaceReserve;
  /** Loads every task directory; unreadable ones are reported as undefined status and skipped. */
  load(options?: LoadOptions): Promise<LoadedTask[]>;
  /**
   * Creates a task's directory and writes its request and status; with `durable` (the
   * default) returns once both are on disk. A task created without it is made durable by
   * its first durable status write.
   */
  create(request: StoredRequest, status: TaskStatus, durable?: boolean): Promise<void>;
  /**
   * Writes a task's status atomically; with `durable` (the default) also fsynced: a final
   * status after its output files, and any status after its request when the task was
   * created without durability. `point` names the write for the crash hook.
   */
  saveStatus(status: TaskStatus, point?: string, durable?: boolean): Promise<void>;
  /** Reads a task's request. */
  readRequest(id: string): Promise<StoredRequest>;
  /**
   * Reads a task's request synchronously (a file of a few hundred bytes, from the page cache),
   * for the rare calls that need a stored task's request; undefined when it is missing or
   * cannot be read, as a request that {@link load} could not read.
   */
  readRequestNow(id: string): StoredRequest | undefined;
  /** Deletes a task's directory. */
  remove(id: string): Promise<void>;
  /** Stops what the store runs in the background (the full disk's check). */
  close(): void;
  /** The default working directory of a task (a command runs in it when its request names none). */
  workDir(id: string): string;
  /**
   * The directories above a task's default working directory, innermost first (the task's
   * directory, tasks/, the data directory): a task that runs as another user must be able to
   * search them to reach its work directory.
   */
  workDirParents(id: string): readonly string[];
  /**
   * Makes the spool a task's stream is written into, keeping at most `capBytes` of it (zero:
   * all), on the store's disk with its reserve.
   */
  createSpool(id: string, stream: StreamName, capBytes: number): OutputSpool;
  /**
   * Opens a task's kept stream for reading, up to `available` bytes when the task is still
   * writing it; a stream that wrote nothing has no file and reads as empty. A storage error
   * is a DrceError ("unavailable", legacy 109).
   */
  openOutput(id: string, stream: StreamName, available?: number): Promise<KeptOutput>;
  /** Opens a task's stream file for reads at any offset (a follower reads it while it grows). */
  openOutputFile(id: string, stream: StreamName): Promise<FileHandle>;
  /**
   * Merges the tail ring a crashed task left after the head of its stream (see
   * tail-ring.ts); undefined when it left none or the ring cannot be read back.
   */
  mergeCrashedOutput(id: string, stream: StreamName): MergedTail | undefined;
  /** Removes a stream's tail ring, once the status that states its merged size is durable. */
  removeOutputTail(id: string, stream: StreamName): void;
  /**
   * The returned files a status lists, in order, each read whole; a file that cannot be
   * read is given empty.
   */
  readResultFiles(status: TaskStatus): Promise<FileResult[]>;
  /** When a task's status was last written (Unix ms), or zero when the task is gone. */
  statusWrittenAt(id: string): Promise<number>;
  /**
   * Keeps the n-th returned file of a task (a read-after action's content). It becomes
   * durable with the task's final status, which lists it: that write fsyncs it and its
   * directory first.
   */
  writeResultFile(id: string, index: number, data: Uint8Array): Promise<void>;
  /** Reads a whole output file (empty when missing). */
  readOutput(id: string, stream: StreamName): Promise<Buffer>;
  /**
   * Reads at most `limit` bytes from the start of an output file (all of it when `limit` is
   * zero), with the file's size; empty and zero when the file is missing.
   */
  readOutputHead(id: string, stream: StreamName, limit: number): Promise<{ data: Buffer; size: number }>;
  /** Size of an output file (zero when missing). */
  outputSize(id: string, stream: StreamName): Promise<number>;
}

/**
 * Creates the store, making its root directory. It is composed of the task layout
 * (task-layout.ts), the load and recovery at start (task-store-load.ts), one of the two write
 * paths (journaled-task-writes.ts, direct-task-writes.ts) and the directory's reads
 * (task-reads.ts).
 */
export async function createTaskStore(options: TaskStoreOptions): Promise<TaskStore & TaskStorePaths> {
  const root = join(options.dataDir, "tasks");
  await mkdir(root, { recursive: true, mode: 0o700 });
  const layout = createTaskLayout(root);
  const crash = createCrashHook(options.crashAt);
  const space = options.space ?? noSpaceReserve;
  const guard = createStorageGuard(space);
  const journal: TaskJournal | undefined = options.journal === true ? createTaskJournal({ dataDir: options.dataDir, root, crashAt: options.crashAt, onError: options.onJournalError, checkpointBytes: options.journalCheckpointBytes }) : undefined;
  // A journaled status rewrites blocks its file has, so a run may fill the disk without any
  // status write failing (and the reserve stays whole): a start with less than a reserve's
  // worth free is a full disk for the journal's records to come, as the reserve says.
  if (journal !== undefined && space.targetBytes > 0) {
    const fs = statfsSync(options.dataDir);
    const free = (process.geteuid?.() === 0 ? fs.bfree : fs.bavail) * fs.bsize;
    if (free < space.targetBytes) space.markFull("ENOSPC", "starting the task journal");
  }
  const writes = journal !== undefined ? createJournaledTaskWrites({ layout, journal, guard, crash }) : createDirectTaskWrites({ layout, guard, crash });
  return {
    root,
    space,
    close: () => {
      space.close();
      void journal?.close().catch((error: unknown) => options.onJournalError?.(error)); // at shutdown: the next start replays what it did not retire
    },
    load: (loadOptions) => loadTasks(layout, journal, loadOptions),
    create: (request, status, durable) => writes.create(request, status, durable),
    saveStatus: (status, point, durable) => writes.saveStatus(status, point, durable),
    remove: (id) => writes.remove(id),
    taskDir: layout.taskDir,
    workDir: layout.workDir,
    workDirParents: layout.workDirParents,
    outputPath: layout.outputPath,
    filePath: layout.filePath,
    ...createTaskReads(layout, space, guard),
  };
}
