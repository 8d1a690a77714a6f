import { mkdirSync, writeSync } from "node:fs";
import { open, readFile, rename, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import type { TaskView } from "../domain/view.js";
import type { Logger } from "../logger.js";

/** Options of {@link createLastStates}. */
export interface LastStatesOptions {
  /** The manager's cluster directory; the log is `<dir>/last-states.log`. */
  readonly dir: string;
  readonly logger: Logger;
}

/** The kept views, by node and task id. */
export type KeptViews = Map<string, Map<string, TaskView>>;

/**
 * The last state the manager saw of each forwarded task on each node, kept on disk so that a
 * manager restarted while a node is away still answers with it. It is an append-only log of
 * JSON lines (a view noted, or ids forgotten), written in batches and never fsynced: after a
 * crash the manager reads back the last states that reached the file, each one a state a node
 * reported, and a line a crash cut short is skipped. The log is compacted (the live views
 * written to a new file, renamed over it) when it is read back and once it holds many more
 * lines than live views.
 */
export interface LastStates {
  /** Reads the log back (compacting it) and opens it for appending; a missing log is empty. */
  load(): Promise<KeptViews>;
  /** Appends a view a node reported (its output left out). */
  note(node: string, view: TaskView): void;
  /** Appends that a node's tasks were forgotten (deleted there). */
  forget(node: string, ids: readonly string[]): void;
  /** Resolves once every line noted so far reached the file. */
  flushed(): Promise<void>;
  /** Writes what is pending and closes the log. */
  close(): Promise<void>;
}

/** One line of the log. */
type Line = { readonly n: string; readonly v: TaskView } | { readonly n: string; readonly f: readonly string[] };

/** Lines the log may hold beyond four per live view before it is compacted. */
const compactSlack = 10_000;

/** The part of a view that is kept: no output, no open files, no per-node items. */
function keptView(view: TaskView): TaskView {
  return { status: view.status, timeMs: view.timeMs, subtasks: [], ...(view.fields === undefined ? {} : { fields: view.fields }) };
}

/** Creates the kept last states on the manager's cluster directory. */
export function createLastStates(options: LastStatesOptions): LastStates {
  const { dir, logger } = options;
  if (typeof dir !== "string" || dir === "") throw new TypeError("createLastStates: dir is required");
  const file = join(dir, "last-states.log");
  const views: KeptViews = new Map();
  let handle: FileHandle | undefined;
  let pending: string[] = [];
  let lines = 0;
  let writing: Promise<void> = Promise.resolve();
  let scheduled = false;
  let failed = false;
  let closed = false;

  const apply = (line: Line): void => {
    let byId = views.get(line.n);
    if ("v" in line) {
      if (byId === undefined) views.set(line.n, (byId = new Map()));
      byId.set(line.v.status.id, line.v);
    } else for (const id of line.f) byId?.delete(id);
  };

  const liveLines = (): string[] => {
    const out: string[] = [];
    for (const [node, byId] of views) for (const view of byId.values()) out.push(JSON.stringify({ n: node, v: view } satisfies Line));
    return out;
  };

  /** Writes the live views to a new file and renames it over the log. */
  const compact = async (): Promise<void> => {
    const live = liveLines();
    const temp = `${file}.tmp`;
    const next = await open(temp, "w", 0o600);
    try {
      if (live.length > 0) await next.writeFile(`${live.join("\n")}\n`);
    } finally {
      await next.close();
    }
    await rename(temp, file);
    await handle?.close();
    handle = await open(file, "a", 0o600);
    lines = live.length;
  };

  const write = async (): Promise<void> => {
    scheduled = false;
    const batch = pending;
    pending = [];
    // Without an open log (it could not be made at start) the states live in memory only.
    if (batch.length === 0 || handle === undefined) return;
    try {
      // Synchronously: the log is never fsynced, so a write only copies a few hundred bytes
      // into the page cache, which costs less than the promise and the thread pool's round
      // trip of FileHandle.write (about 5 % of a manager's CPU per forwarded task).
      writeSync(handle.fd, `${batch.join("\n")}\n`);
      lines += batch.length;
      let live = 0;
      for (const byId of views.values()) live += byId.size;
      if (lines > 4 * live + compactSlack) await compact();
      failed = false;
    } catch (error) {
      // The in-memory states stay right; only a restart would miss what was not written.
      if (!failed) logger.error({ err: String(error), file }, "the manager's last known task states could not be written; a restart may not know them");
      failed = true;
    }
  };

  const append = (line: Line): void => {
    apply(line);
    if (closed) return;
    pending.push(JSON.stringify(line));
    if (scheduled) return;
    scheduled = true;
    // One write per turn of the event loop carries every change noted in it.
    writing = writing.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(write);
  };

  return {
    async load() {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      let text = "";
      try {
        text = await readFile(file, "utf8");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") logger.error({ err: String(error), file }, "the manager's last known task states could not be read; calls for tasks on unreachable nodes will not know them");
      }
      for (const raw of text.split("\n")) {
        if (raw === "") continue;
        try {
          apply(JSON.parse(raw) as Line);
        } catch {
          // A line a crash cut short (the log is not fsynced): the states before it stand.
        }
      }
      try {
        await compact();
      } catch (error) {
        logger.error({ err: String(error), file }, "the manager's last known task states could not be written; they are kept in memory only");
      }
      return views;
    },
    note(node, view) {
      append({ n: node, v: keptView(view) });
    },
    forget(node, ids) {
      if (ids.length > 0 && views.get(node) !== undefined) append({ n: node, f: ids });
    },
    flushed: () => writing,
    async close() {
      closed = true;
      await writing;
      await write();
      await handle?.close();
      handle = undefined;
    },
  };
}
