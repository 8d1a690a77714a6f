import { closeSync, fdatasync, fsync, open as openCallback, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { rename } from "node:fs/promises";
import { dirname, join, basename } from "node:path";
import { promisify } from "node:util";

const fdatasyncRaw = promisify(fdatasync);
const fsyncRaw = promisify(fsync);

/** fsyncs in flight from this process (file and directory). */
let syncsInFlight = 0;

async function counted<T>(action: () => Promise<T>): Promise<T> {
  syncsInFlight++;
  try {
    return await action();
  } finally {
    syncsInFlight--;
  }
}

const fdatasyncAsync = (fd: number): Promise<void> => counted(() => fdatasyncRaw(fd));

/**
 * Tells whether an fsync of this process is under way. While one is, the file system's
 * journal commits, and a call that creates or renames a file may wait for that commit:
 * such calls then go to the thread pool rather than block the event loop.
 */
export function diskSyncing(): boolean {
  return syncsInFlight > 0;
}

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /**
   * When false, the write is atomic (temp file, rename) but not fsynced: it survives a
   * crash of the node (the page cache keeps it) but not one of the OS. Default true.
   */
  readonly durable?: boolean;
  /** fsyncs the directory; defaults to a plain {@link fsyncDir}. */
  readonly syncDir?: (dir: string) => Promise<void>;
  /**
   * Durable work to finish before the rename (e.g. fsyncs of files the new content refers
   * to); it runs alongside the temp file's own fdatasync.
   */
  readonly before?: () => Promise<unknown>;
}

const openAsync = promisify(openCallback);

let tmpCounter = 0;

/**
 * Writes a file atomically: a temp file in the same directory, then a rename over the
 * target. A durable write also fdatasyncs the temp file before the rename and fsyncs the
 * directory after it, so the rename itself survives a crash of the OS.
 *
 * The small write and close are synchronous calls: each takes microseconds in the page
 * cache, while a round trip through the thread pool costs a millisecond on a loaded host
 * and a task makes several. The fsyncs, which wait for the disk, go to the pool, and so do
 * the creation and renames while an fsync runs (see {@link diskSyncing}).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  await writeFilesAtomic([{ path, data }], options);
}

/**
 * Writes several files atomically, each as {@link writeFileAtomic} does, sharing the waits:
 * every temp file is written, then all are fdatasynced at once (with `before`), then renamed
 * one by one in the order given, then each directory is fsynced once. The renames are
 * metadata changes the file system journals in order, so after a crash a later file of the
 * list is never on disk without the earlier ones; and since every rename follows every
 * fdatasync, no name ever points at unwritten data.
 */
export async function writeFilesAtomic(files: readonly { readonly path: string; readonly data: string | Uint8Array }[], options: AtomicWriteOptions = {}): Promise<void> {
  const durable = options.durable ?? true;
  const temps: { tmp: string; path: string }[] = [];
  const fds: number[] = [];
  const removeTemps = (): void => {
    for (const { tmp } of temps) rmSync(tmp, { force: true });
  };
  try {
    for (const { path, data } of files) {
      const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${(tmpCounter = (tmpCounter + 1) % 1e9)}.tmp`);
      const bytes = typeof data === "string" ? Buffer.from(data) : data;
      const fd = diskSyncing() ? await openAsync(tmp, "w", 0o600) : openSync(tmp, "w", 0o600);
      temps.push({ tmp, path });
      fds.push(fd);
      for (let offset = 0; offset < bytes.length; ) offset += writeSync(fd, bytes, offset, bytes.length - offset);
    }
    // fdatasync: the data and the size; the rest of the inode does not matter to a reader.
    if (durable) await Promise.all([...fds.map((fd) => fdatasyncAsync(fd)), options.before?.()]);
  } catch (error) {
    for (const fd of fds.splice(0)) closeSync(fd);
    removeTemps();
    throw error;
  }
  for (const fd of fds) closeSync(fd);
  try {
    for (const { tmp, path } of temps) {
      // Renaming over an existing file makes ext4 start writeback of the new one's unsynced
      // data (auto_da_alloc), which blocks for a millisecond or more on a busy disk: only an
      // fsynced file, with nothing left to write, is renamed on the event loop.
      if (durable && !diskSyncing()) renameSync(tmp, path);
      else await rename(tmp, path);
    }
  } catch (error) {
    removeTemps();
    throw error;
  }
  if (durable) {
    const dirs = [...new Set(temps.map(({ path }) => dirname(path)))];
    await Promise.all(dirs.map((dir) => (options.syncDir ?? fsyncDir)(dir)));
  }
}

/**
 * fsyncs a directory so that entries created or renamed in it are durable. Opening and
 * closing it are synchronous (they change nothing on disk and take microseconds); only the
 * fsync waits in the thread pool.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = openSync(dir, "r");
  try {
    await counted(() => fsyncRaw(fd));
  } finally {
    closeSync(fd);
  }
}

/** fdatasyncs an existing file (missing files are ignored: nothing to make durable). */
export async function syncFile(path: string): Promise<void> {
  await syncExisting(path, fdatasyncAsync);
}

/**
 * fsyncs an existing path, file or directory, inode and all; a path gone meanwhile has
 * nothing to make durable.
 */
export async function syncPath(path: string): Promise<void> {
  await syncExisting(path, (fd) => counted(() => fsyncRaw(fd)));
}

async function syncExisting(path: string, sync: (fd: number) => Promise<void>): Promise<void> {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  try {
    await sync(fd);
  } finally {
    closeSync(fd);
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
        .catch(() => undefined) // the running sync's failure is its own awaiters'; the next sync runs after it either way
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

/**
 * Writes a new file durably under a name nothing holds: an exclusive create, the write,
 * fdatasync, then the directory's fsync. Where a temp file and a rename wait for two
 * journal commits (the temp file's, then the rename's), this waits for one: the create is
 * committed with the file's data, and the directory's fsync then finds it done. Fails with
 * EEXIST when the name is taken (use {@link writeFileAtomic} to replace a file). A crash
 * before it resolves may leave the file empty; a reader takes an empty file as never written.
 */
export async function createFileDurable(path: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? Buffer.from(data) : data;
  const fd = diskSyncing() ? await openAsync(path, "wx", 0o600) : openSync(path, "wx", 0o600);
  try {
    for (let offset = 0; offset < bytes.length; ) offset += writeSync(fd, bytes, offset, bytes.length - offset);
    await fdatasyncAsync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(path, { force: true });
    throw error;
  }
  closeSync(fd);
  await fsyncDir(dirname(path));
}
