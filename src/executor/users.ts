import { readFileSync } from "node:fs";
import { chmod, lchown, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { RunAs } from "./runner.js";

/** One line of /etc/passwd. */
interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

function readPasswd(path: string): PasswdEntry[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    // No passwd file (a minimal container): users are named by number only.
    return [];
  }
  const entries: PasswdEntry[] = [];
  for (const line of text.split("\n")) {
    const [name, , uid, gid, , home] = line.split(":");
    if (name === undefined || name === "" || uid === undefined || gid === undefined) continue;
    if (!/^\d+$/.test(uid) || !/^\d+$/.test(gid)) continue;
    entries.push({ name, uid: Number(uid), gid: Number(gid), home: home ?? "/" });
  }
  return entries;
}

/**
 * Finds the user a task runs as: by name or by numeric id (`"nobody"`, `"65534"`), from the
 * passwd file. A numeric id without an entry is still a user: its group is the same number,
 * its name the number, its home "/". A name without an entry is undefined.
 */
export function lookupUser(user: string | number, passwd = "/etc/passwd"): RunAs | undefined {
  const entries = readPasswd(passwd);
  const numeric = typeof user === "number" ? user : /^\d+$/.test(user) ? Number(user) : undefined;
  const entry = numeric !== undefined ? entries.find((e) => e.uid === numeric) : entries.find((e) => e.name === user);
  if (entry !== undefined) return { uid: entry.uid, gid: entry.gid, name: entry.name, home: entry.home === "" ? "/" : entry.home };
  if (numeric === undefined) return undefined;
  return { uid: numeric, gid: numeric, name: String(numeric), home: "/" };
}

/**
 * Hands a task's own work directory to the user it runs as: the directory and what the
 * node wrote in it (files created before the command) are chowned to the user, and the
 * directories above it (`searchable`, e.g. the task's directory, tasks/, the data
 * directory) get the search bit for others, never the read bit, so the user can reach its
 * work directory without listing other tasks.
 */
export async function handWorkDirTo(runAs: RunAs, workDir: string, searchable: readonly string[]): Promise<void> {
  for (const dir of searchable) {
    const { mode } = await stat(dir);
    if ((mode & 0o001) === 0) await chmod(dir, (mode & 0o7777) | 0o001);
  }
  const chownTree = async (path: string): Promise<void> => {
    await lchown(path, runAs.uid, runAs.gid);
    const entries = await readdir(path, { withFileTypes: true }).catch(() => []); // removed meanwhile (the task is being deleted): nothing below it to hand over
    for (const entry of entries) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) await chownTree(child);
      else await lchown(child, runAs.uid, runAs.gid);
    }
  };
  await chownTree(workDir);
}
