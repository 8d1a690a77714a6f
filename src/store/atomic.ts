import { open, rename, rm } from "node:fs/promises";
import { dirname, join, basename } from "node:path";
import { randomBytes } from "node:crypto";

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /**
   * When false, the write is atomic (temp file, rename) but not fsynced: it survives a
   * crash of the node (the page cache keeps it) but not one of the OS. Default true.
   */
  readonly durable?: boolean;
  /** fsyncs the directory; defaults to a plain {@link fsyncDir}. */
  readonly syncDir?: (dir: string) => Promise<void>;
}

/**
 * Writes a file atomically: a temp file in the same directory, then a rename over the
 * target. A durable write also fsyncs the temp file's data before the rename and the
 * directory after it, so the rename itself survives a crash of the OS.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const durable = options.durable ?? true;
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(4).toString("hex")}.tmp`);
  const handle = await open(tmp, "w", 0o600);
  try {
    await handle.writeFile(data);
    // fdatasync: the data and the size; the rest of the inode does not matter to a reader.
    if (durable) await handle.datasync();
  } catch (error) {
    await handle.close();
    await rm(tmp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
  if (durable) await (options.syncDir ?? fsyncDir)(dir);
}

/** fsyncs a directory so that entries created or renamed in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fdatasyncs an existing file (missing files are ignored: nothing to make durable). */
export async function syncFile(path: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/**
 * Group commit of directory fsyncs: concurrent callers asking for the same directory share
 * one fsync. A caller arriving while an fsync runs waits for the next one (the running one
 * may have started before the caller's rename), which every later arrival joins too; so
 * with many tasks finishing at once, the shared tasks directory is fsynced a few times
 * rather than once per task.
 */
export function createDirSyncGroup(sync: (dir: string) => Promise<void> = fsyncDir): (dir: string) => Promise<void> {
  const groups = new Map<string, { running: Promise<void>; next: Promise<void> | undefined }>();
  return (dir) => {
    const group = groups.get(dir);
    if (group === undefined) {
      const running = sync(dir).finally(() => {
        const current = groups.get(dir);
        if (current?.next === undefined) groups.delete(dir);
      });
      groups.set(dir, { running, next: undefined });
      return running;
    }
    if (group.next === undefined) {
      const next = group.running
        .catch(() => undefined)
        .then(() => {
          groups.set(dir, { running: next, next: undefined });
          return sync(dir);
        })
        .finally(() => {
          if (groups.get(dir)?.running === next && groups.get(dir)?.next === undefined) groups.delete(dir);
        });
      group.next = next;
    }
    return group.next;
  };
}
