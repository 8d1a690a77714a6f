import { mkdirSync } from "node:fs";
import { readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import type { Placement } from "../domain/placement.js";
import type { StoredSpec } from "../domain/spec-json.js";
import { createFileDurable, fsyncDir, writeFileAtomic, writeFilesAtomic } from "../store/atomic.js";
import { openJournal, type Journal } from "../store/journal.js";

/**
 * What a restarted manager needs to carry on a fan-out's rollout: the request as the nodes
 * get it (its stored form, without secrets), its rate controls, and whether the request held
 * secrets (an SSH password, key or passphrase), which are never written to disk.
 */
export interface KeptRollout {
  readonly spec: StoredSpec;
  readonly placement: Placement;
  /** The request carried secrets: a node it never reached cannot be sent it after a restart. */
  readonly secrets: boolean;
}

/** Where a task tree went: what the manager writes before it forwards the task. */
export interface PlacementEntry {
  /** The root task's id. */
  readonly id: string;
  /** The root task's alias, "" for none. */
  readonly alias: string;
  /** Every id of the tree, the root's first: a subtask is reached by its own id too. */
  readonly ids: readonly string[];
  /** The digest of the request (see specDigest): a repeated submission is the same task when it matches. */
  readonly digest: string;
  /** "one": placed on one node; "all": fanned out to every node of `nodes`. */
  readonly kind: "one" | "all";
  /** The node(s) holding the task, in name order for "all". */
  readonly nodes: readonly string[];
  /**
   * For "all": the selected nodes that never got the task (down when it was placed, or
   * skipped once max-errors was reached), with the status they are reported with.
   */
  readonly skipped: Readonly<Record<string, "unreachable" | "not-started">>;
  /** Root mode: 1 sync, 2 async. */
  readonly mode: number;
  /** When it was placed, Unix ms. */
  readonly placedAt: number;
  /**
   * For "all": present from placement until the rollout ended (every node started or
   * skipped), so that a manager that restarts in between carries the rollout on.
   */
  readonly rollout?: KeptRollout;
}

/** Options of {@link createPlacementRecord}. */
export interface PlacementRecordOptions {
  /** The directory of the record (one file per task tree); made when missing. */
  readonly dir: string;
  /**
   * The directory of the record's journal (outside `dir`); made when missing. With it, each
   * put and remove is durable once its journal record is (a group commit shared with the
   * puts and removes made meanwhile), and the entry files follow in the background, made
   * durable at each checkpoint. Without it, each entry file is made durable itself.
   */
  readonly journalDir?: string;
  /** Journal bytes after which a checkpoint makes the entry files durable and retires the journal's older segments. Default 1 MiB. */
  readonly checkpointBytes?: number;
  /** Where a checkpoint's failure goes (the journal then keeps its records, and the next checkpoint tries again). */
  readonly onCheckpointError?: (error: unknown) => void;
}

/** Entry files a checkpoint makes durable at once. */
const checkpointBatch = 32;

/** One change of the record as its journal keeps it. */
type JournalRecord = { readonly put: PlacementEntry } | { readonly remove: string };

/**
 * The durable map of task id (and alias) to node(s). Each entry is its own file, made durable
 * before the task is forwarded, so that after a crash of the manager every task a node may
 * have accepted is found again; read back at start. A new entry is created under its name
 * (exclusive create, fdatasync, directory fsync: one journal commit to wait for); a change
 * replaces it with the node store's discipline (temp file, fdatasync, rename, directory
 * fsync). A crash during an entry's first write may leave its file empty: that task was
 * never forwarded, and the empty file is removed at start.
 *
 * With a journal (see {@link PlacementRecordOptions.journalDir}), a put or remove is durable
 * once its journal record is: one fdatasync of a preallocated segment, shared by every change
 * made meanwhile. The entry files are written, durably, by each checkpoint, which then retires
 * the journal's older segments (and unsynced by a close that comes before the next one; a
 * removed entry's file is removed at once); at
 * start the journal's changes are applied over the files, in order, and a checkpoint brings
 * the files up to them.
 */
export interface PlacementRecord {
  /** Reads every kept entry; an unreadable one is reported through `onBadEntry` and skipped. */
  load(onBadEntry?: (file: string, error: unknown) => void): Promise<number>;
  /** The entry holding a task id or alias (a subtask's id included). */
  find(ref: string): PlacementEntry | undefined;
  /** Writes an entry durably (a new one, or a change of an existing one's nodes). */
  put(entry: PlacementEntry): Promise<void>;
  /** Removes an entry durably (its task was deleted on every node). */
  remove(id: string): Promise<void>;
  /** Every entry, newest first. */
  entries(): readonly PlacementEntry[];
  /** Waits for the changes in flight and a checkpoint under way, then closes the journal (if any). */
  close(): Promise<void>;
}

/** Creates the placement record on its directory (and its journal, when given one). */
export function createPlacementRecord(options: PlacementRecordOptions): PlacementRecord {
  const { dir } = options;
  if (typeof dir !== "string" || dir === "") throw new TypeError("createPlacementRecord: dir is required");
  const checkpointBytes = options.checkpointBytes ?? 1024 * 1024;
  if (!Number.isInteger(checkpointBytes) || checkpointBytes <= 0) throw new RangeError(`createPlacementRecord: checkpointBytes must be a positive integer, not ${checkpointBytes}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Entries are a few hundred bytes: 1 MiB segments hold thousands, and cost 1 MiB of disk each.
  const journal: Journal | undefined = options.journalDir === undefined ? undefined : openJournal({ dir: options.journalDir, segmentBytes: Math.max(1024 * 1024, checkpointBytes) });
  const byId = new Map<string, PlacementEntry>();
  const byRef = new Map<string, PlacementEntry>();
  // Ids are checked by the core before they reach the record ([A-Za-z0-9._-], not "." or "..").
  const fileOf = (id: string) => join(dir, `${id}.json`);
  const index = (entry: PlacementEntry): void => {
    const before = byId.get(entry.id);
    if (before !== undefined) unindex(before);
    byId.set(entry.id, entry);
    for (const id of entry.ids) byRef.set(id, entry);
    // An alias names the newest task that took it, as on a node once the older one ended; an id always wins.
    if (entry.alias !== "" && byId.get(entry.alias) === undefined) byRef.set(entry.alias, entry);
  };
  const unindex = (entry: PlacementEntry): void => {
    byId.delete(entry.id);
    for (const id of entry.ids) if (byRef.get(id) === entry) byRef.delete(id);
    if (entry.alias !== "" && byRef.get(entry.alias) === entry) byRef.delete(entry.alias);
  };
  const removeFile = (id: string): Promise<void> =>
    unlink(fileOf(id)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
    });

  // With a journal, the entry files follow the journal off the caller's path: creating and
  // renaming a file waits for the file system's own journal on a busy disk (32 at once took
  // tens of ms), while the record's durability is its journal's. One file write runs at a
  // time, on `fileWrites`: the checkpoints that make the files durable, the rounds that remove
  // a removed entry's file, and the close's round that brings every file up to the
  // acknowledged changes, so that a file never goes back to an older state.
  // The newest appended state of each id whose file may be behind or not yet durable (its JSON, null once removed).
  const newest = new Map<string, string | null>();
  // Ids changed since the last checkpoint began (the next one makes their files durable).
  const unflushed = new Set<string>();
  // Ids whose change was acknowledged and whose file is not written yet.
  const behind = new Set<string>();
  // Ids a checkpoint under way is making durable.
  const checkpointed = new Set<string>();
  let fileWrites: Promise<void> = Promise.resolve();
  let catchingUp = false;
  let checkpointing: Promise<void> | undefined;
  const forget = (id: string): void => {
    if (!unflushed.has(id) && !behind.has(id) && !checkpointed.has(id)) newest.delete(id);
  };
  let temps = 0;
  const writeNewest = async (ids: readonly string[], durable: boolean): Promise<void> => {
    const writes: { path: string; data: string }[] = [];
    for (const id of ids) {
      const data = newest.get(id);
      if (typeof data === "string") writes.push({ path: fileOf(id), data });
      else await removeFile(id);
    }
    if (durable) {
      // In batches: a checkpoint's thousands of fdatasyncs queued at once would hold the thread
      // pool, and the journal's next group commit would wait behind all of them.
      for (let at = 0; at < writes.length; at += checkpointBatch) await writeFilesAtomic(writes.slice(at, at + checkpointBatch));
      await fsyncDir(dir);
      return;
    }
    // Through the thread pool: a rename may wait for the file system's journal, which must not stall the event loop.
    for (const { path, data } of writes) {
      const temp = join(dir, `.${basename(path)}.${process.pid}.${temps++}.tmp`);
      await writeFile(temp, data, { mode: 0o600 });
      await rename(temp, path);
    }
  };
  // A round that brings files up to the acknowledged changes: every one at a close, the
  // removals alone after a removal (a swept or deleted task's file goes at once; a put's file
  // waits for the checkpoint).
  const catchUp = (all: boolean): void => {
    if (catchingUp && !all) return;
    catchingUp = true;
    fileWrites = fileWrites.then(async () => {
      catchingUp = false;
      const ids = [...behind].filter((id) => all || newest.get(id) === null);
      for (const id of ids) behind.delete(id);
      await writeNewest(ids, false).catch(() => undefined); // a file left behind is written by the next checkpoint, from the journal's newest change; the journal holds the change meanwhile
      for (const id of ids) forget(id);
    });
  };
  const checkpoint = (journal: Journal): Promise<void> => {
    // Sealed with the journal's segments: what they hold is what this checkpoint makes durable.
    const ids = [...unflushed];
    unflushed.clear();
    for (const id of ids) {
      checkpointed.add(id);
      behind.delete(id); // this checkpoint writes its file
    }
    const flush = (): Promise<void> => {
      const written = fileWrites.then(() => writeNewest(ids, true));
      fileWrites = written.catch(() => undefined); // the failure is this checkpoint's own; later file writes still run
      return written;
    };
    return journal
      .checkpoint(flush)
      .catch((error: unknown) => {
        // Nothing was retired: these changes are still the journal's, and the next checkpoint writes them.
        for (const id of ids) unflushed.add(id);
        throw error;
      })
      .finally(() => {
        for (const id of ids) {
          checkpointed.delete(id);
          forget(id);
        }
      });
  };
  // A put's file is written by the next checkpoint (durably, from the newest change of its id)
  // or, when the record closes before one, by the close (unsynced, as the journal still holds
  // the change). Writing each file as its put came as well (a temp file and a rename through
  // the thread pool, per placement) was work the checkpoint then did again: about 5 % of a
  // manager's CPU per forwarded task. What waits meanwhile is bounded by the checkpoint's size:
  // each change is in the journal too. A removal's file goes at once (unsynced), as before.
  const changed = (journal: Journal, id: string): void => {
    behind.add(id);
    if (checkpointing !== undefined || journal.liveBytes < checkpointBytes) return;
    checkpointing = checkpoint(journal)
      .catch((error: unknown) => options.onCheckpointError?.(error))
      .finally(() => (checkpointing = undefined));
  };
  const append = (journal: Journal, change: JournalRecord, id: string, data: string | null): Promise<void> => {
    newest.set(id, data);
    unflushed.add(id);
    return journal.append(Buffer.from(JSON.stringify(change)));
  };

  return {
    async load(onBadEntry) {
      const loaded = new Map<string, PlacementEntry>();
      for (const name of await readdir(dir)) {
        if (!name.endsWith(".json")) continue;
        try {
          const text = await readFile(join(dir, name), "utf8");
          if (text === "") {
            // An entry whose first write a crash cut short: its put never resolved, so its task was never forwarded.
            await unlink(join(dir, name));
            continue;
          }
          const entry = JSON.parse(text) as PlacementEntry;
          loaded.set(entry.id, entry);
        } catch (error) {
          onBadEntry?.(name, error);
        }
      }
      if (journal !== undefined) {
        // The journal's changes are newer than any file they touch (a checkpoint writes the files before it retires them).
        const replayed = journal.replay();
        for (const bytes of replayed) {
          const change = JSON.parse(Buffer.from(bytes).toString("utf8")) as JournalRecord;
          const id = "put" in change ? change.put.id : change.remove;
          if ("put" in change) loaded.set(id, change.put);
          else loaded.delete(id);
          newest.set(id, "put" in change ? JSON.stringify(change.put) : null);
          unflushed.add(id);
        }
        // The files are brought up to the journal at once, and its older segments retired.
        if (replayed.length > 0) await checkpoint(journal);
      }
      // Oldest first, so that an alias names the newest task that took it.
      for (const entry of [...loaded.values()].sort((a, b) => a.placedAt - b.placedAt)) index(entry);
      return loaded.size;
    },
    find: (ref) => byRef.get(ref),
    async put(entry) {
      const data = JSON.stringify(entry);
      if (journal !== undefined) {
        await append(journal, { put: entry }, entry.id, data);
        index(entry);
        changed(journal, entry.id);
        return;
      }
      if (byId.has(entry.id)) await writeFileAtomic(fileOf(entry.id), data);
      else {
        await createFileDurable(fileOf(entry.id), data).catch(async (error: NodeJS.ErrnoException) => {
          // A file no entry was read from (an unreadable one, kept for its operator) is replaced.
          if (error.code !== "EEXIST") throw error;
          await writeFileAtomic(fileOf(entry.id), data);
        });
      }
      index(entry);
    },
    async remove(id) {
      const entry = byId.get(id);
      if (entry === undefined) return;
      unindex(entry);
      if (journal !== undefined) {
        await append(journal, { remove: id }, id, null);
        changed(journal, id);
        catchUp(false);
        return;
      }
      await removeFile(id);
      await fsyncDir(dir);
    },
    entries: () => [...byId.values()].sort((a, b) => b.placedAt - a.placedAt),
    async close() {
      await checkpointing;
      catchUp(true);
      await fileWrites;
      await journal?.close();
    },
  };
}
