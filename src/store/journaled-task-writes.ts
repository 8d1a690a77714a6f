import { mkdir, rm } from "node:fs/promises";
import { isFinalState } from "../domain/states.js";
import { diskSyncing, syncFile } from "./atomic.js";
import type { CrashHook } from "./crash-hook.js";
import { makeDir, overwriteStatusFile, syncDirIfPresent, writeWhole } from "./small-files.js";
import type { StorageGuard } from "./storage-guard.js";
import type { TaskJournal } from "./task-journal.js";
import type { TaskLayout } from "./task-layout.js";
import type { TaskWrites } from "./task-writes.js";

/** Options of {@link createJournaledTaskWrites}. */
export interface JournaledTaskWritesOptions {
  /** Where the tasks' files are. */
  readonly layout: TaskLayout;
  /** The journal whose records make the writes durable. */
  readonly journal: TaskJournal;
  /** What a failed write becomes. */
  readonly guard: StorageGuard;
  /** The test-only crash hook, called after each write. */
  readonly crash: CrashHook;
}

/**
 * The write path with the journal: a task's acceptance, each status and a removal are
 * journal records made durable by group commit; the task's directory is written without
 * fsyncs and made durable in bulk by the journal's checkpoints.
 */
export function createJournaledTaskWrites(options: JournaledTaskWritesOptions): TaskWrites {
  const { layout, journal, guard, crash } = options;
  const { root } = layout;
  return {
    async create(request, status, createDurable) {
      const dir = layout.taskDir(status.id);
      const durable = createDurable ?? true;
      await guard("creating a task", async () => {
        // Two plain calls: a recursive one tries work/ first and fails, then makes both.
        if (diskSyncing()) await mkdir(layout.workDir(status.id), { recursive: true, mode: 0o700 });
        else {
          makeDir(dir);
          makeDir(layout.workDir(status.id));
        }
        const requestJson = JSON.stringify(request);
        const statusJson = JSON.stringify(status);
        // The files first, unsynced: a restarted process finds them (the page cache keeps
        // them); the record after them makes the acceptance durable, and a crash of the OS
        // before a checkpoint finds the files again through the record's replay.
        writeWhole(layout.requestPath(status.id), requestJson);
        writeWhole(layout.statusPath(status.id), statusJson);
        const appended = journal.append({ kind: "accepted", request, status }, statusJson, requestJson);
        journal.applying(appended, [root, dir, layout.requestPath(status.id), layout.statusPath(status.id)]);
        // Without durability, the record is made durable by the task's next durable one.
        if (durable) await appended;
        else appended.catch(() => undefined); // a later durable record of the task reports the journal's failure
      });
      crash("accepted");
    },
    async saveStatus(status, point, saveDurable) {
      const durable = saveDurable ?? true;
      const { id } = status;
      await guard(
        "saving a task status",
        async () => {
          const path = layout.statusPath(id);
          const statusJson = JSON.stringify(status);
          // A final status is acknowledged once its output files, its returned files and the
          // directory entries that name them are durable too; those syncs run alongside the
          // record's group commit.
          const final = isFinalState(status.state);
          const outputs = final
            ? [
                syncFile(layout.outputPath(id, "stdout")),
                syncFile(layout.outputPath(id, "stderr")),
                ...status.files.map((_, index) => syncFile(layout.filePath(id, index))),
                ...(status.files.length > 0 ? [syncDirIfPresent(layout.filesDir(id)), syncDirIfPresent(layout.taskDir(id))] : []),
              ]
            : [];
          const appended = journal.append({ kind: "status", status }, statusJson);
          // The file is rewritten once the record is durable, never before: a status file on
          // disk is then always one a replay would give too.
          const applied = Promise.all([durable ? appended : undefined, ...outputs]).then(() => overwriteStatusFile(path, statusJson));
          if (!durable) appended.catch(() => undefined); // a later durable record of the task reports the journal's failure
          journal.applying(applied, [layout.taskDir(id), path]);
          await applied;
        },
        true,
      );
      crash(point);
    },
    async remove(id) {
      await guard("deleting a task", async () => {
        // The record is written before the directory goes: a node that dies in between
        // finds the deletion at its replay, and finishes it.
        const appended = journal.append({ kind: "deleted", id });
        const removed = Promise.all([appended, rm(layout.taskDir(id), { recursive: true, force: true })]);
        journal.applying(removed, [root]);
        await removed;
      });
    },
  };
}
