import { readFileSync, statSync } from "node:fs";
import { mkdir, open, readFile, stat, writeFile } from "node:fs/promises";
import { DrceError, ErrorCode } from "../domain/errors.js";
import type { FileResult } from "../domain/task.js";
import { openKept } from "./kept-output.js";
import { OutputSpool } from "./spool.js";
import type { SpaceReserve } from "./space-reserve.js";
import type { StorageGuard } from "./storage-guard.js";
import { mergeCrashedTail, removeTail } from "./tail-ring.js";
import type { TaskLayout } from "./task-layout.js";
import type { StoredRequest, TaskStore } from "./task-store.js";

/**
 * What the store reads of a task's directory, and the files a running task writes there
 * outside the write path: its output spools and tail rings, its returned files.
 */
export type TaskReads = Omit<TaskStore, "root" | "space" | "load" | "close" | "create" | "saveStatus" | "remove" | "workDir" | "workDirParents">;

/** Output files up to this size are read synchronously (see readOutput). */
const smallOutputBytes = 256 * 1024;

/** Gives the reads of the tasks under `layout`, whose disk keeps `space`. */
export function createTaskReads(layout: TaskLayout, space: SpaceReserve, guard: StorageGuard): TaskReads {
  return {
    async readRequest(id) {
      return guard("reading a task request", async () => JSON.parse(await readFile(layout.requestPath(id), "utf8")) as StoredRequest);
    },
    readRequestNow(id) {
      try {
        return JSON.parse(readFileSync(layout.requestPath(id), "utf8")) as StoredRequest;
      } catch {
        // Missing or damaged (a directory cleaned by hand): as at start-up, the task is served without it.
        return undefined;
      }
    },
    createSpool: (id, stream, capBytes) => new OutputSpool(layout.outputPath(id, stream), capBytes, space),
    openOutput: (id, stream, available) => openKept(layout.outputPath(id, stream), stream, available),
    openOutputFile: (id, stream) => open(layout.outputPath(id, stream), "r"),
    mergeCrashedOutput(id, stream) {
      try {
        return mergeCrashedTail(layout.outputPath(id, stream));
      } catch {
        // A ring that cannot be read back (the head file gone, an I/O error) leaves the head alone.
        return undefined;
      }
    },
    removeOutputTail: (id, stream) => removeTail(layout.outputPath(id, stream)),
    async readResultFiles(status) {
      const results: FileResult[] = [];
      for (const [index, file] of status.files.entries()) {
        // A file deleted by hand (or never written, after a crash) is reported empty, as the
        // protocol reports a file it could not read back.
        const data = await readFile(layout.filePath(status.id, index)).catch(() => new Uint8Array(0));
        results.push({ name: file.name, action: file.action, data });
      }
      return results;
    },
    async statusWrittenAt(id) {
      try {
        return Math.floor((await stat(layout.statusPath(id))).mtimeMs);
      } catch {
        // Deleted between the list and the stat: the task is reported with what is known.
        return 0;
      }
    },
    async writeResultFile(id, index, data) {
      await mkdir(layout.filesDir(id), { recursive: true, mode: 0o700 });
      await writeFile(layout.filePath(id, index), data, { mode: 0o600 });
    },
    async readOutput(id, stream) {
      try {
        const path = layout.outputPath(id, stream);
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
      const path = layout.outputPath(id, stream);
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
        return (await stat(layout.outputPath(id, stream))).size;
      } catch {
        return 0;
      }
    },
  };
}
