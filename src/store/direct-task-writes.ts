import { mkdirSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { isFinalState } from "../domain/states.js";
import { createDirSyncGroup, diskSyncing, syncFile, writeFileAtomic, writeFilesAtomic } from "./atomic.js";
import type { CrashHook } from "./crash-hook.js";
import { syncDirIfPresent } from "./small-files.js";
import type { StorageGuard } from "./storage-guard.js";
import type { TaskLayout } from "./task-layout.js";
import type { TaskWrites } from "./task-writes.js";

/** Options of {@link createDirectTaskWrites}. */
export interface DirectTaskWritesOptions {
  /** Where the tasks' files are. */
  readonly layout: TaskLayout;
  /** What a failed write becomes. */
  readonly guard: StorageGuard;
  /** The test-only crash hook, called after each write. */
  readonly crash: CrashHook;
}

/**
 * The write path without the journal: every JSON write is atomic (temp file, rename), and a
 * durable one also fsyncs the file and its directory; directory fsyncs of concurrent writes
 * are shared.
 */
export function createDirectTaskWrites(options: DirectTaskWritesOptions): TaskWrites {
  const { layout, guard, crash } = options;
  const { root } = layout;
  const syncDir = createDirSyncGroup();
  // Tasks whose directory, request and status were written but not fsynced yet.
  const volatile = new Set<string>();
  return {
    async create(request, status, createDurable) {
      const durable = createDurable ?? true;
      await guard("creating a task", async () => {
        // Synchronous: microseconds in the page cache, against a thread pool round trip;
        // unless an fsync runs, when creating a directory may wait for the journal.
        if (diskSyncing()) await mkdir(layout.workDir(status.id), { recursive: true, mode: 0o700 });
        else mkdirSync(layout.workDir(status.id), { recursive: true, mode: 0o700 });
        // Both files are fdatasynced (at once) before either is renamed, the request renamed
        // before the status, so a status on disk always has its request; the directory fsyncs
        // that make the renames and the task's directory durable (the tasks directory's along
        // with the task's own) are shared with concurrent submissions.
        const files = [
          { path: layout.requestPath(status.id), data: JSON.stringify(request) },
          { path: layout.statusPath(status.id), data: JSON.stringify(status) },
        ];
        await writeFilesAtomic(files, { durable, syncDir: (path) => Promise.all([syncDir(path), syncDir(root)]).then(() => undefined) });
        if (!durable) volatile.add(status.id);
      });
      crash("accepted");
    },
    async saveStatus(status, point, saveDurable) {
      const durable = saveDurable ?? true;
      const { id } = status;
      await guard("saving a task status", async () => {
        const pending = durable && volatile.has(id);
        // The status must not become durable before what it describes: a final status's output
        // files (and the request, for a task created without durability) are fsynced before
        // its rename. Earlier statuses state no output sizes (a restart reads the files'), so
        // they wait for no output. A stream that wrote nothing has no file to sync.
        const final = isFinalState(status.state);
        // The returned files it lists too, with the directory entries that name them
        // (`files/N` in `files/`, and `files/` in the task's directory).
        const resultFiles = final ? status.files.map((_, index) => syncFile(layout.filePath(id, index))) : [];
        const resultDirs = final && status.files.length > 0 ? [syncDirIfPresent(layout.filesDir(id)), syncDirIfPresent(layout.taskDir(id))] : [];
        const before = (): Promise<unknown> =>
          Promise.all([
            final ? syncFile(layout.outputPath(id, "stdout")) : undefined,
            final ? syncFile(layout.outputPath(id, "stderr")) : undefined,
            pending ? syncFile(layout.requestPath(id)) : undefined,
            ...resultFiles,
            ...resultDirs,
          ]);
        await Promise.all([writeFileAtomic(layout.statusPath(id), JSON.stringify(status), { durable, syncDir, before }), pending ? syncDir(root) : undefined]);
        if (pending) volatile.delete(id);
      }, true);
      crash(point);
    },
    async remove(id) {
      volatile.delete(id);
      await guard("deleting a task", () => rm(layout.taskDir(id), { recursive: true, force: true }));
    },
  };
}
