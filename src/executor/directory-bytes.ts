import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";

/*
 * The disk a task uses: the bytes of the files under its work dir, for `disk_usage_max_bytes`
 * and the usage fields. Apart from process-usage.ts, which reads /proc.
 */

/** Options of {@link directoryBytes}. */
export interface DirectoryBytesOptions {
  /** Entries visited at most; past it the walk stops and the sum so far is returned. */
  readonly maxEntries?: number;
  /** Directory levels below `dir` entered at most. */
  readonly maxDepth?: number;
  /** How many directories are read at once. */
  readonly concurrency?: number;
}

/**
 * Sums the sizes of the regular files under `dir`, recursively, without following
 * symlinks (a link counts as nothing, so a task cannot point the count at /). The walk is
 * bounded by `maxEntries` (default 100000) and `maxDepth` (default 64): a task that made
 * more files than that gets a lower bound, which is enough to tell that a limit is broken.
 * Entries that vanish during the walk are skipped; a missing `dir` gives 0.
 */
export async function directoryBytes(dir: string, options: DirectoryBytesOptions = {}): Promise<number> {
  const maxEntries = options.maxEntries ?? 100_000;
  const maxDepth = options.maxDepth ?? 64;
  const concurrency = Math.max(1, options.concurrency ?? 4);
  let visited = 0;
  let total = 0;
  const queue: { readonly path: string; readonly depth: number }[] = [{ path: dir, depth: 0 }];
  const rootStat = await lstat(dir).catch(() => undefined); // a missing dir holds 0 bytes (as documented above)
  if (rootStat === undefined) return 0;
  if (!rootStat.isDirectory()) return rootStat.isFile() ? rootStat.size : 0;

  const walkOne = async (path: string, depth: number): Promise<void> => {
    let entries;
    try {
      entries = await readdir(path, { withFileTypes: true });
    } catch {
      // Removed during the walk, or not readable: it counts nothing (a lower bound, as documented).
      return;
    }
    const files: string[] = [];
    for (const entry of entries) {
      if (visited >= maxEntries) break;
      visited++;
      const child = join(path, entry.name);
      if (entry.isDirectory()) {
        if (depth < maxDepth) queue.push({ path: child, depth: depth + 1 });
      } else if (entry.isFile()) {
        files.push(child);
      }
    }
    for (let i = 0; i < files.length; i += 32) {
      const stats = await Promise.all(files.slice(i, i + 32).map((file) => lstat(file).catch(() => undefined))); // a file deleted during the walk counts nothing
      for (const stat of stats) if (stat?.isFile() === true) total += stat.size;
    }
  };
  let active = 0;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      while (active < concurrency && queue.length > 0 && visited < maxEntries) {
        const item = queue.shift()!;
        active++;
        void walkOne(item.path, item.depth).finally(() => {
          active--;
          pump();
        });
      }
      if (active === 0) resolve();
    };
    pump();
  });
  return total;
}
