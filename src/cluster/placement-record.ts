import { mkdirSync } from "node:fs";
import { readdir, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Placement } from "../domain/placement.js";
import type { StoredSpec } from "../domain/spec-json.js";
import { createFileDurable, fsyncDir, writeFileAtomic } from "../store/atomic.js";

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
}

/**
 * The durable map of task id (and alias) to node(s). Each entry is its own file, made durable
 * before the task is forwarded, so that after a crash of the manager every task a node may
 * have accepted is found again; read back at start. A new entry is created under its name
 * (exclusive create, fdatasync, directory fsync: one journal commit to wait for); a change
 * replaces it with the node store's discipline (temp file, fdatasync, rename, directory
 * fsync). A crash during an entry's first write may leave its file empty: that task was
 * never forwarded, and the empty file is removed at start.
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
}

/** Creates the placement record on its directory. */
export function createPlacementRecord(options: PlacementRecordOptions): PlacementRecord {
  const { dir } = options;
  if (typeof dir !== "string" || dir === "") throw new TypeError("createPlacementRecord: dir is required");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
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
  return {
    async load(onBadEntry) {
      const loaded: PlacementEntry[] = [];
      for (const name of await readdir(dir)) {
        if (!name.endsWith(".json")) continue;
        try {
          const text = await readFile(join(dir, name), "utf8");
          if (text === "") {
            // An entry whose first write a crash cut short: its put never resolved, so its task was never forwarded.
            await unlink(join(dir, name));
            continue;
          }
          loaded.push(JSON.parse(text) as PlacementEntry);
        } catch (error) {
          onBadEntry?.(name, error);
        }
      }
      // Oldest first, so that an alias names the newest task that took it.
      for (const entry of loaded.sort((a, b) => a.placedAt - b.placedAt)) index(entry);
      return loaded.length;
    },
    find: (ref) => byRef.get(ref),
    async put(entry) {
      const data = JSON.stringify(entry);
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
      await unlink(fileOf(id)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== "ENOENT") throw error;
      });
      await fsyncDir(dir);
    },
    entries: () => [...byId.values()].sort((a, b) => b.placedAt - a.placedAt),
  };
}
