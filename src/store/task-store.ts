import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statfsSync, statSync, writeSync } from "node:fs";
import { mkdir, open, readdir, readFile, rm, stat, writeFile, type FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import { DrceError, ErrorCode } from "../domain/errors.js";
import type { StoredSpec } from "../domain/spec-json.js";
import { isFinalState, TaskState } from "../domain/states.js";
import type { FileResult, StreamName, TaskStatus } from "../domain/task.js";
import type { KeptOutput } from "../domain/view.js";
import { openKept } from "./kept-output.js";
import { OutputSpool } from "./spool.js";
import { mergeCrashedTail, removeTail, type MergedTail } from "./tail-ring.js";
import { createDirSyncGroup, diskSyncing, fsyncDir, syncFile, writeFileAtomic, writeFilesAtomic } from "./atomic.js";
import { isNoSpace, noSpaceReserve, type SpaceReserve } from "./space-reserve.js";
import { createTaskJournal, type ReplayedTask, type TaskJournal } from "./task-journal.js";

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
 * Where a store keeps a task's files, for tests and tools that look at the disk; the node
 * itself goes through {@link TaskStore}'s operations.
 */
export interface TaskStorePaths {
  /** The task's directory. */
  taskDir(id: string): string;
  /** The spool file of a stream. */
  outputPath(id: string, stream: StreamName): string;
  /** Where the n-th returned file is kept. */
  filePath(id: string, index: number): string;
}

/** fsyncs a directory that may not exist (a task whose files were removed by hand): nothing to make durable then. */
async function syncDirIfPresent(dir: string): Promise<void> {
  try {
    await fsyncDir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}

/** Removes the temp files of atomic writes (`.NAME.PID.N.tmp`) a crash left in a task's directory. */
function removeTempFiles(dir: string): void {
  for (const name of readdirSync(dir)) {
    if (name.startsWith(".") && name.endsWith(".tmp")) rmSync(join(dir, name), { force: true });
  }
}

// One frozen empty list for every loaded status that has none: JSON.parse gives each empty
// array room for elements, and a stored task has three (subtasks, files, escaped pids); a
// finished `true` task's status took 824 bytes of heap with its own, 360 with the shared one.
const noItems: readonly never[] = Object.freeze([]);

/** A status as parsed from `status.json`, its empty lists replaced by one shared frozen list. */
function compactStatus(parsed: TaskStatus): TaskStatus {
  const { subtaskIds, files, escapedPids } = parsed;
  if (subtaskIds.length > 0 && files.length > 0 && escapedPids.length > 0) return parsed;
  const status = parsed as { -readonly [K in keyof TaskStatus]: TaskStatus[K] };
  if (subtaskIds.length === 0) status.subtaskIds = noItems;
  if (files.length === 0) status.files = noItems;
  if (escapedPids.length === 0) status.escapedPids = noItems;
  return status;
}

/**
 * Reads a file synchronously as UTF-8 through `buffer`, which every file of a load shares;
 * a file larger than it is read whole. One buffer instead of one per file: with 100,000
 * stored tasks, the freed buffers left the node about 15 MB more RSS after start-up.
 */
function readSmallFile(path: string, buffer: Buffer): string {
  const fd = openSync(path, "r");
  try {
    let filled = 0;
    for (;;) {
      const wanted = buffer.length - filled;
      const bytes = readSync(fd, buffer, filled, wanted, null);
      filled += bytes;
      // A regular file reads short only at its end: no second read to find it.
      if (bytes < wanted) return buffer.toString("utf8", 0, filled);
      if (filled === buffer.length) break;
    }
  } finally {
    closeSync(fd);
  }
  return readFileSync(path, "utf8");
}

/**
 * Overwrites a status file in place, synchronously and without fsync: one write at offset
 * zero, padded with spaces (which JSON allows after a value) to the file's current length
 * so that nothing of the older status is left after it. Where a temp file and a rename cost a
 * new inode, its blocks and a rename for ext4 to flush, this rewrites a block the file has. A
 * write the process dies in is one system call, whole or not begun; one that a crash of the OS
 * tears is replaced from the journal's durable record at the next start (the write comes
 * after that record is durable).
 */
function overwriteStatusFile(path: string, data: string): void {
  const fd = openSync(path, "r+", 0o600);
  try {
    const size = fstatSync(fd).size;
    const bytes = Buffer.from(data.length >= size ? data : data.padEnd(size, " "));
    for (let offset = 0; offset < bytes.length; ) offset += writeSync(fd, bytes, offset, bytes.length - offset, offset);
  } finally {
    closeSync(fd);
  }
}

/**
 * A journaled final status checked against the output it states: its record and its output
 * files' fsyncs run side by side, so a crash of the OS can leave the record durable and a
 * stream shorter than the status says (the task was never acknowledged as ended then). Such a
 * task is reported crashed, with the output that was kept, rather than as a result whose output
 * is not all there. A stream past its cap keeps less than its size, and is not compared.
 */
function withOutputKept(status: TaskStatus, dir: string): TaskStatus {
  if (!isFinalState(status.state)) return status;
  const sizeOf = (stream: StreamName): number => {
    try {
      return statSync(join(dir, stream)).size;
    } catch {
      return 0;
    }
  };
  const stdout = status.stdoutTruncated ? status.stdoutSize : sizeOf("stdout");
  const stderr = status.stderrTruncated ? status.stderrSize : sizeOf("stderr");
  if (stdout >= status.stdoutSize && stderr >= status.stderrSize) return status;
  return {
    ...status,
    state: TaskState.Crashed,
    errorCode: ErrorCode.ExecuteTask,
    errorMessage: "the node stopped before the task's output was durable; the output kept is served",
    stdoutSize: Math.min(stdout, status.stdoutSize),
    stderrSize: Math.min(stderr, status.stderrSize),
  };
}

/** Makes a directory (mode 0700) unless it is there already. */
function makeDir(path: string): void {
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
}

/** Writes a file whole, synchronously and without fsync. */
function writeWhole(path: string, data: string): void {
  const bytes = Buffer.from(data);
  const fd = openSync(path, "w", 0o600);
  try {
    for (let offset = 0; offset < bytes.length; ) offset += writeSync(fd, bytes, offset, bytes.length - offset);
  } finally {
    closeSync(fd);
  }
}

/** Output files up to this size are read synchronously (see readOutput). */
const smallOutputBytes = 256 * 1024;

/** Creates the store, making its root directory. */
export async function createTaskStore(options: TaskStoreOptions): Promise<TaskStore & TaskStorePaths> {
  const root = join(options.dataDir, "tasks");
  await mkdir(root, { recursive: true, mode: 0o700 });
  const taskDir = (id: string): string => join(root, id);
  const syncDir = createDirSyncGroup();
  // Tasks whose directory, request and status were written but not fsynced yet.
  const volatile = new Set<string>();
  const crash = (point: string | undefined): void => {
    if (point !== undefined && options.crashAt === point) {
      // The crash hook stops the node dead, as SIGKILL would, to test recovery.
      process.kill(process.pid, "SIGKILL");
    }
  };
  const space = options.space ?? noSpaceReserve;
  const journal: TaskJournal | undefined = options.journal === true ? createTaskJournal({ dataDir: options.dataDir, root, crashAt: options.crashAt, onError: options.onJournalError, checkpointBytes: options.journalCheckpointBytes }) : undefined;
  // A journaled status rewrites blocks its file has, so a run may fill the disk without any
  // status write failing (and the reserve stays whole): a start with less than a reserve's
  // worth free is a full disk for the journal's records to come, as the reserve says.
  if (journal !== undefined && space.targetBytes > 0) {
    const fs = statfsSync(options.dataDir);
    const free = (process.geteuid?.() === 0 ? fs.bfree : fs.bavail) * fs.bsize;
    if (free < space.targetBytes) space.markFull("ENOSPC", "starting the task journal");
  }
  const wrap = async <T>(what: string, action: () => Promise<T>, reserve = false): Promise<T> => {
    for (;;) {
      try {
        return await action();
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? "EIO";
        if (isNoSpace(error)) {
          space.markFull(code, what);
          // A status write gets the reserve's room, a piece at a time; nothing else does.
          if (reserve && space.giveBack()) continue;
        }
        throw new DrceError("unavailable", `storage error while ${what} (${code})`, { cause: error });
      }
    }
  };
  return {
    root,
    space,
    close: () => {
      space.close();
      void journal?.close().catch((error: unknown) => options.onJournalError?.(error)); // at shutdown: the next start replays what it did not retire
    },
    async load(loadOptions) {
      const allRequests = (loadOptions?.requests ?? "all") === "all";
      // The journal's last word on each task it names, applied over the directories below.
      const replay = journal?.takeReplay() ?? new Map<string, ReplayedTask>();
      const replayed = replay.size > 0;
      const names = await readdir(root);
      const loaded: LoadedTask[] = [];
      // Synchronous reads: at start-up nothing else waits for the event loop, and for
      // thousands of tasks a thread pool round trip per open, stat, read and close costs
      // seconds on a busy host where the reads themselves (page cache) take milliseconds.
      const buffer = Buffer.allocUnsafe(64 * 1024);
      const read = (path: string): string => readSmallFile(path, buffer);
      for (const name of names) {
        if (name.startsWith(".")) continue;
        const dir = taskDir(name);
        const journaled = replay.get(name);
        replay.delete(name);
        if (journaled?.deleted === true) {
          // Deleted, by a node that died before the removal was durable: it stays deleted.
          await rm(dir, { recursive: true, force: true });
          continue;
        }
        let status: TaskStatus | undefined;
        let statusText: string | undefined;
        try {
          statusText = read(join(dir, "status.json"));
          status = compactStatus(JSON.parse(statusText) as TaskStatus);
        } catch {
          status = undefined;
        }
        if (status === undefined && journaled === undefined) {
          // No status: the crash came between mkdir and the first write; the task was
          // never acknowledged, so its directory is removed.
          await rm(dir, { recursive: true, force: true });
          continue;
        }
        // A node that died during a status write leaves its temp file; that task's status on
        // disk is not final then (the final write is the last), so only those directories
        // are searched, not every finished task's.
        if (status === undefined || !isFinalState(status.state)) removeTempFiles(dir);
        if (journaled !== undefined) {
          // The journal's record is the newest acknowledged state: the directory's is older,
          // or lost with a crash of the OS before a checkpoint made it durable.
          const journaledStatus = withOutputKept(journaled.status, dir);
          const journaledText = JSON.stringify(journaledStatus);
          if (journaledText !== statusText) await writeFileAtomic(join(dir, "status.json"), journaledText, { durable: false });
          status = compactStatus(journaledStatus);
        }
        const final = isFinalState(status!.state);
        let request: StoredRequest | undefined;
        if (allRequests || !final || journaled?.request !== undefined) {
          try {
            request = JSON.parse(read(join(dir, "request.json"))) as StoredRequest;
          } catch {
            request = journaled?.request as StoredRequest | undefined;
            if (request !== undefined) await writeFileAtomic(join(dir, "request.json"), JSON.stringify(request), { durable: false });
          }
          if (!allRequests && final) request = undefined;
        }
        loaded.push({ status: status!, request });
      }
      // Tasks the journal holds whose directory a crash of the OS lost before a checkpoint.
      for (const [id, journaled] of replay) {
        if (journaled.deleted) continue;
        const dir = taskDir(id);
        mkdirSync(join(dir, "work"), { recursive: true, mode: 0o700 });
        if (journaled.request !== undefined) await writeFileAtomic(join(dir, "request.json"), JSON.stringify(journaled.request), { durable: false });
        // Its output went with the directory: an end it states is reported crashed, as above.
        const status = withOutputKept(journaled.status, dir);
        await writeFileAtomic(join(dir, "status.json"), JSON.stringify(status), { durable: false });
        const final = isFinalState(status.state);
        loaded.push({ status: compactStatus(status), request: allRequests || !final ? (journaled.request as StoredRequest | undefined) : undefined });
      }
      // What was replayed is made durable in the directories, and its segments retired,
      // before the node takes new work: a crash from here on replays them again, harmlessly.
      if (replayed) await journal!.checkpoint();
      return loaded;
    },
    async create(request, status, createDurable) {
      const dir = taskDir(status.id);
      const durable = createDurable ?? true;
      if (journal !== undefined) {
        await wrap("creating a task", async () => {
          // Two plain calls: a recursive one tries work/ first and fails, then makes both.
          if (diskSyncing()) await mkdir(join(dir, "work"), { recursive: true, mode: 0o700 });
          else {
            makeDir(dir);
            makeDir(join(dir, "work"));
          }
          const requestJson = JSON.stringify(request);
          const statusJson = JSON.stringify(status);
          // The files first, unsynced: a restarted process finds them (the page cache keeps
          // them); the record after them makes the acceptance durable, and a crash of the OS
          // before a checkpoint finds the files again through the record's replay.
          writeWhole(join(dir, "request.json"), requestJson);
          writeWhole(join(dir, "status.json"), statusJson);
          const appended = journal.append({ kind: "accepted", request, status }, statusJson, requestJson);
          journal.applying(appended, [root, dir, join(dir, "request.json"), join(dir, "status.json")]);
          // Without durability, the record is made durable by the task's next durable one.
          if (durable) await appended;
          else appended.catch(() => undefined); // a later durable record of the task reports the journal's failure
        });
        crash("accepted");
        return;
      }
      await wrap("creating a task", async () => {
        // Synchronous: microseconds in the page cache, against a thread pool round trip;
        // unless an fsync runs, when creating a directory may wait for the journal.
        if (diskSyncing()) await mkdir(join(dir, "work"), { recursive: true, mode: 0o700 });
        else mkdirSync(join(dir, "work"), { recursive: true, mode: 0o700 });
        // Both files are fdatasynced (at once) before either is renamed, the request renamed
        // before the status, so a status on disk always has its request; the directory fsyncs
        // that make the renames and the task's directory durable (the tasks directory's along
        // with the task's own) are shared with concurrent submissions.
        const files = [
          { path: join(dir, "request.json"), data: JSON.stringify(request) },
          { path: join(dir, "status.json"), data: JSON.stringify(status) },
        ];
        await writeFilesAtomic(files, { durable, syncDir: (path) => Promise.all([syncDir(path), syncDir(root)]).then(() => undefined) });
        if (!durable) volatile.add(status.id);
      });
      crash("accepted");
    },
    async saveStatus(status, point, saveDurable) {
      const durable = saveDurable ?? true;
      const dir = taskDir(status.id);
      if (journal !== undefined) {
        await wrap(
          "saving a task status",
          async () => {
            const path = join(dir, "status.json");
            const statusJson = JSON.stringify(status);
            // A final status is acknowledged once its output files, its returned files and the
            // directory entries that name them are durable too; those syncs run alongside the
            // record's group commit.
            const final = isFinalState(status.state);
            const outputs = final
              ? [
                  syncFile(join(dir, "stdout")),
                  syncFile(join(dir, "stderr")),
                  ...status.files.map((_, index) => syncFile(join(dir, "files", String(index)))),
                  ...(status.files.length > 0 ? [syncDirIfPresent(join(dir, "files")), syncDirIfPresent(dir)] : []),
                ]
              : [];
            const appended = journal.append({ kind: "status", status }, statusJson);
            // The file is rewritten once the record is durable, never before: a status file on
            // disk is then always one a replay would give too.
            const applied = Promise.all([durable ? appended : undefined, ...outputs]).then(() => overwriteStatusFile(path, statusJson));
            if (!durable) appended.catch(() => undefined); // a later durable record of the task reports the journal's failure
            journal.applying(applied, [dir, path]);
            await applied;
          },
          true,
        );
        crash(point);
        return;
      }
      await wrap("saving a task status", async () => {
        const pending = durable && volatile.has(status.id);
        // The status must not become durable before what it describes: a final status's output
        // files (and the request, for a task created without durability) are fsynced before
        // its rename. Earlier statuses state no output sizes (a restart reads the files'), so
        // they wait for no output. A stream that wrote nothing has no file to sync.
        const final = isFinalState(status.state);
        // The returned files it lists too, with the directory entries that name them
        // (`files/N` in `files/`, and `files/` in the task's directory).
        const resultFiles = final ? status.files.map((_, index) => syncFile(join(dir, "files", String(index)))) : [];
        const resultDirs = final && status.files.length > 0 ? [syncDirIfPresent(join(dir, "files")), syncDirIfPresent(dir)] : [];
        const before = (): Promise<unknown> =>
          Promise.all([
            final ? syncFile(join(dir, "stdout")) : undefined,
            final ? syncFile(join(dir, "stderr")) : undefined,
            pending ? syncFile(join(dir, "request.json")) : undefined,
            ...resultFiles,
            ...resultDirs,
          ]);
        await Promise.all([writeFileAtomic(join(dir, "status.json"), JSON.stringify(status), { durable, syncDir, before }), pending ? syncDir(root) : undefined]);
        if (pending) volatile.delete(status.id);
      }, true);
      crash(point);
    },
    async readRequest(id) {
      return wrap("reading a task request", async () => JSON.parse(await readFile(join(taskDir(id), "request.json"), "utf8")) as StoredRequest);
    },
    readRequestNow(id) {
      try {
        return JSON.parse(readFileSync(join(taskDir(id), "request.json"), "utf8")) as StoredRequest;
      } catch {
        // Missing or damaged (a directory cleaned by hand): as at start-up, the task is served without it.
        return undefined;
      }
    },
    async remove(id) {
      volatile.delete(id);
      if (journal !== undefined) {
        await wrap("deleting a task", async () => {
          // The record is written before the directory goes: a node that dies in between
          // finds the deletion at its replay, and finishes it.
          const appended = journal.append({ kind: "deleted", id });
          const removed = Promise.all([appended, rm(taskDir(id), { recursive: true, force: true })]);
          journal.applying(removed, [root]);
          await removed;
        });
        return;
      }
      await wrap("deleting a task", () => rm(taskDir(id), { recursive: true, force: true }));
    },
    taskDir,
    workDir: (id) => join(taskDir(id), "work"),
    workDirParents: (id) => [taskDir(id), root, dirname(root)],
    outputPath: (id, stream) => join(taskDir(id), stream),
    filePath: (id, index) => join(taskDir(id), "files", String(index)),
    createSpool: (id, stream, capBytes) => new OutputSpool(join(taskDir(id), stream), capBytes, space),
    openOutput: (id, stream, available) => openKept(join(taskDir(id), stream), stream, available),
    openOutputFile: (id, stream) => open(join(taskDir(id), stream), "r"),
    mergeCrashedOutput(id, stream) {
      try {
        return mergeCrashedTail(join(taskDir(id), stream));
      } catch {
        // A ring that cannot be read back (the head file gone, an I/O error) leaves the head alone.
        return undefined;
      }
    },
    removeOutputTail: (id, stream) => removeTail(join(taskDir(id), stream)),
    async readResultFiles(status) {
      const results: FileResult[] = [];
      for (const [index, file] of status.files.entries()) {
        // A file deleted by hand (or never written, after a crash) is reported empty, as the
        // protocol reports a file it could not read back.
        const data = await readFile(join(taskDir(status.id), "files", String(index))).catch(() => new Uint8Array(0));
        results.push({ name: file.name, action: file.action, data });
      }
      return results;
    },
    async statusWrittenAt(id) {
      try {
        return Math.floor((await stat(join(taskDir(id), "status.json"))).mtimeMs);
      } catch {
        // Deleted between the list and the stat: the task is reported with what is known.
        return 0;
      }
    },
    async writeResultFile(id, index, data) {
      const files = join(taskDir(id), "files");
      await mkdir(files, { recursive: true, mode: 0o700 });
      await writeFile(join(files, String(index)), data, { mode: 0o600 });
    },
    async readOutput(id, stream) {
      try {
        const path = join(taskDir(id), stream);
        // Small outputs (most) are read at once; large ones through the thread pool, so a
        // big read never stalls the event loop.
        if (statSync(path).size <= smallOutputBytes) return readFileSync(path);
        return await readFile(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return Buffer.alloc(0);
        throw new DrceError("unavailable", `storage error while reading ${stream}`, { cause: error, legacyCode: ErrorCode.ReadDataFile });
      }
    },
    async readOutputHead(id, stream, limit) {
      const path = join(taskDir(id), stream);
      try {
        const size = statSync(path).size;
        const wanted = limit > 0 ? Math.min(limit, size) : size;
        // As readOutput: small reads at once, large ones through the thread pool.
        if (size <= smallOutputBytes) return { data: readFileSync(path).subarray(0, wanted), size };
        const handle = await open(path, "r");
        try {
          const data = Buffer.allocUnsafe(wanted);
          let filled = 0;
          while (filled < wanted) {
            const { bytesRead } = await handle.read(data, filled, wanted - filled, filled);
            if (bytesRead === 0) break;
            filled += bytesRead;
          }
          return { data: data.subarray(0, filled), size };
        } finally {
          await handle.close();
        }
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return { data: Buffer.alloc(0), size: 0 };
        throw new DrceError("unavailable", `storage error while reading ${stream}`, { cause: error, legacyCode: ErrorCode.ReadDataFile });
      }
    },
    async outputSize(id, stream) {
      try {
        return (await stat(join(taskDir(id), stream))).size;
      } catch {
        return 0;
      }
    },
  };
}
