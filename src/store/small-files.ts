import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { fsyncDir } from "./atomic.js";

/** fsyncs a directory that may not exist (a task whose files were removed by hand): nothing to make durable then. */
export async function syncDirIfPresent(dir: string): Promise<void> {
  try {
    await fsyncDir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}

/** Removes the temp files of atomic writes (`.NAME.PID.N.tmp`) a crash left in a task's directory. */
export function removeTempFiles(dir: string): void {
  for (const name of readdirSync(dir)) {
    if (name.startsWith(".") && name.endsWith(".tmp")) rmSync(join(dir, name), { force: true });
  }
}

/**
 * Reads a file synchronously as UTF-8 through `buffer`, which every file of a load shares;
 * a file larger than it is read whole. One buffer instead of one per file: with 100,000
 * stored tasks, the freed buffers left the node about 15 MB more RSS after start-up.
 */
export function readSmallFile(path: string, buffer: Buffer): string {
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
export function overwriteStatusFile(path: string, data: string): void {
  const fd = openSync(path, "r+", 0o600);
  try {
    const size = fstatSync(fd).size;
    const bytes = Buffer.from(data.length >= size ? data : data.padEnd(size, " "));
    for (let offset = 0; offset < bytes.length; ) offset += writeSync(fd, bytes, offset, bytes.length - offset, offset);
  } finally {
    closeSync(fd);
  }
}

/** Makes a directory (mode 0700) unless it is there already. */
export function makeDir(path: string): void {
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
}

/** Writes a file whole, synchronously and without fsync. */
export function writeWhole(path: string, data: string): void {
  const bytes = Buffer.from(data);
  const fd = openSync(path, "w", 0o600);
  try {
    for (let offset = 0; offset < bytes.length; ) offset += writeSync(fd, bytes, offset, bytes.length - offset);
  } finally {
    closeSync(fd);
  }
}
