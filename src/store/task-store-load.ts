import { mkdirSync, statSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { ErrorCode } from "../domain/errors.js";
import { isFinalState, TaskState } from "../domain/states.js";
import type { StreamName, TaskStatus } from "../domain/task.js";
import { writeFileAtomic } from "./atomic.js";
import { readSmallFile, removeTempFiles } from "./small-files.js";
import type { ReplayedTask, TaskJournal } from "./task-journal.js";
import type { TaskLayout } from "./task-layout.js";
import type { LoadedTask, LoadOptions, StoredRequest } from "./task-store.js";

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

/** What one load reads with: the layout, which requests it wants, and one read buffer. */
interface LoadContext {
  readonly layout: TaskLayout;
  readonly allRequests: boolean;
  readonly read: (path: string) => string;
}

/**
 * Loads one task's directory, with the journal's last word on the task when it has one;
 * undefined when the directory is removed instead (a deletion the journal holds, or a task
 * that was never acknowledged).
 */
async function loadTaskDir(context: LoadContext, id: string, journaled: ReplayedTask | undefined): Promise<LoadedTask | undefined> {
  const { layout, allRequests, read } = context;
  const dir = layout.taskDir(id);
  if (journaled?.deleted === true) {
    // Deleted, by a node that died before the removal was durable: it stays deleted.
    await rm(dir, { recursive: true, force: true });
    return undefined;
  }
  let status: TaskStatus | undefined;
  let statusText: string | undefined;
  try {
    statusText = read(layout.statusPath(id));
    status = compactStatus(JSON.parse(statusText) as TaskStatus);
  } catch {
    status = undefined;
  }
  if (status === undefined && journaled === undefined) {
    // No status: the crash came between mkdir and the first write; the task was
    // never acknowledged, so its directory is removed.
    await rm(dir, { recursive: true, force: true });
    return undefined;
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
    if (journaledText !== statusText) await writeFileAtomic(layout.statusPath(id), journaledText, { durable: false });
    status = compactStatus(journaledStatus);
  }
  const final = isFinalState(status!.state);
  let request: StoredRequest | undefined;
  if (allRequests || !final || journaled?.request !== undefined) {
    try {
      request = JSON.parse(read(layout.requestPath(id))) as StoredRequest;
    } catch {
      request = journaled?.request as StoredRequest | undefined;
      if (request !== undefined) await writeFileAtomic(layout.requestPath(id), JSON.stringify(request), { durable: false });
    }
    if (!allRequests && final) request = undefined;
  }
  return { status: status!, request };
}

/** Writes again the directory of a task the journal holds and a crash of the OS lost before a checkpoint. */
async function restoreTaskDir(context: LoadContext, id: string, journaled: Extract<ReplayedTask, { deleted: false }>): Promise<LoadedTask> {
  const { layout, allRequests } = context;
  const dir = layout.taskDir(id);
  mkdirSync(layout.workDir(id), { recursive: true, mode: 0o700 });
  if (journaled.request !== undefined) await writeFileAtomic(layout.requestPath(id), JSON.stringify(journaled.request), { durable: false });
  // Its output went with the directory: an end it states is reported crashed, as above.
  const status = withOutputKept(journaled.status, dir);
  await writeFileAtomic(layout.statusPath(id), JSON.stringify(status), { durable: false });
  const final = isFinalState(status.state);
  return { status: compactStatus(status), request: allRequests || !final ? (journaled.request as StoredRequest | undefined) : undefined };
}

/**
 * Loads every task directory under the layout's root at start-up, applying the journal's
 * replay over them when the store keeps one, and recovers what a crash left: temp files of
 * torn writes, directories of tasks never acknowledged, deletions not finished, directories
 * a crash of the OS lost. What was replayed is made durable by a checkpoint before it returns.
 */
export async function loadTasks(layout: TaskLayout, journal: TaskJournal | undefined, options: LoadOptions | undefined): Promise<LoadedTask[]> {
  // The journal's last word on each task it names, applied over the directories below.
  const replay = journal?.takeReplay() ?? new Map<string, ReplayedTask>();
  const replayed = replay.size > 0;
  const names = await readdir(layout.root);
  const loaded: LoadedTask[] = [];
  // Synchronous reads: at start-up nothing else waits for the event loop, and for
  // thousands of tasks a thread pool round trip per open, stat, read and close costs
  // seconds on a busy host where the reads themselves (page cache) take milliseconds.
  const buffer = Buffer.allocUnsafe(64 * 1024);
  const context: LoadContext = { layout, allRequests: (options?.requests ?? "all") === "all", read: (path) => readSmallFile(path, buffer) };
  for (const name of names) {
    if (name.startsWith(".")) continue;
    const journaled = replay.get(name);
    replay.delete(name);
    const task = await loadTaskDir(context, name, journaled);
    if (task !== undefined) loaded.push(task);
  }
  // Tasks the journal holds whose directory a crash of the OS lost before a checkpoint.
  for (const [id, journaled] of replay) {
    if (journaled.deleted) continue;
    loaded.push(await restoreTaskDir(context, id, journaled));
  }
  // What was replayed is made durable in the directories, and its segments retired,
  // before the node takes new work: a crash from here on replays them again, harmlessly.
  if (replayed) await journal!.checkpoint();
  return loaded;
}
