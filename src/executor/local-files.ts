import { constants, mkdirSync, realpathSync } from "node:fs";
import { mkdir, open, realpath, rm, lstat } from "node:fs/promises";
import { dirname, join, relative, isAbsolute, sep } from "node:path";
import { DrceError, ErrorCode } from "../domain/errors.js";
import { fileNameProblem } from "../domain/validate.js";
import type { FileOps } from "./runner.js";

/** Tells whether `child` is `parent` itself or lies inside it (both already real paths). */
export function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}

/**
 * Resolves a file name inside a working directory, refusing names that escape it lexically
 * or through a symlink of a directory on the way. The file itself may not exist yet; a
 * final component that is a symlink is refused when opened (O_NOFOLLOW).
 */
async function resolveInside(workDir: string, name: string, code: number, createParents: boolean): Promise<string> {
  const problem = fileNameProblem(name);
  if (problem !== undefined) throw new DrceError("invalid", `file ${JSON.stringify(name)}: ${problem}`, { legacyCode: code });
  const root = await realpath(workDir);
  const target = join(root, name);
  const parent = dirname(target);
  if (createParents) await makeParentsInside(root, relative(root, parent), name, code);
  let realParent: string;
  try {
    realParent = await realpath(parent);
  } catch {
    throw new DrceError("invalid", `file ${JSON.stringify(name)}: its directory does not exist`, { legacyCode: code });
  }
  if (!isInside(root, realParent)) {
    throw new DrceError("invalid", `file ${JSON.stringify(name)}: path escapes the working directory`, { legacyCode: code });
  }
  return join(realParent, target.slice(parent.length + 1));
}

/**
 * Creates the directories of `relParent` below `root` one at a time, checking each by its
 * real path first: `mkdir -p` through a symlink that points out ("link-out/new/file") would
 * create directories outside the work dir before any check could refuse the name.
 */
async function makeParentsInside(root: string, relParent: string, name: string, code: number): Promise<void> {
  let current = root;
  for (const part of relParent.split(sep)) {
    if (part === "" || part === ".") continue;
    const next = join(current, part);
    let real = await realpath(next).catch(() => undefined); // missing: made below, then checked again
    if (real === undefined) {
      // Missing (or a dangling symlink, which mkdir refuses with EEXIST and realpath again fails on).
      await mkdir(next, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== "EEXIST") throw error;
      });
      real = await realpath(next).catch(() => undefined); // still unresolvable (a dangling symlink): refused below as an escape
    }
    if (real === undefined || !isInside(root, real)) {
      throw new DrceError("invalid", `file ${JSON.stringify(name)}: path escapes the working directory`, { legacyCode: code });
    }
    current = real;
  }
}

function fileError(name: string, code: number, what: string, error: unknown): DrceError {
  if (error instanceof DrceError) return error;
  const errno = (error as NodeJS.ErrnoException).code ?? "EIO";
  const reason = errno === "ELOOP" ? "is a symlink" : errno === "EISDIR" ? "is a directory" : errno === "ENOENT" ? "does not exist" : errno;
  return new DrceError("invalid", `file ${JSON.stringify(name)}: cannot ${what} (${reason})`, { legacyCode: code, cause: error });
}

/** File operations on the node's own file system, confined to the working directory. */
export const localFiles: FileOps = {
  async prepareWorkDir(workDir) {
    // Synchronous on the task's hot path: microseconds, against two thread pool round trips.
    mkdirSync(workDir, { recursive: true, mode: 0o700 });
    return realpathSync(workDir);
  },
  async write(workDir, name, data) {
    try {
      const path = await resolveInside(workDir, name, ErrorCode.FileCreate, true);
      const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
      try {
        await handle.writeFile(data);
      } finally {
        await handle.close();
      }
    } catch (error) {
      throw fileError(name, ErrorCode.FileCreate, "be written", error);
    }
  },
  async remove(workDir, name) {
    try {
      const path = await resolveInside(workDir, name, ErrorCode.FileDeleteBefore, false).catch((error: unknown) => {
        if (error instanceof DrceError && error.message.endsWith("does not exist")) return undefined;
        throw error;
      });
      if (path === undefined) return;
      const info = await lstat(path).catch(() => undefined); // gone already: rm with force below does nothing, as a delete of a missing file should
      if (info?.isDirectory() === true) throw Object.assign(new Error("directory"), { code: "EISDIR" });
      await rm(path, { force: true });
    } catch (error) {
      throw fileError(name, ErrorCode.FileDeleteBefore, "be deleted", error);
    }
  },
  async read(workDir, name, maxBytes) {
    try {
      const path = await resolveInside(workDir, name, ErrorCode.FileRead, false);
      const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        const { size } = await handle.stat();
        if (size > maxBytes) throw new DrceError("invalid", `file ${JSON.stringify(name)}: larger than ${maxBytes} bytes`, { legacyCode: ErrorCode.FileRead });
        return await handle.readFile();
      } finally {
        await handle.close();
      }
    } catch (error) {
      throw fileError(name, ErrorCode.FileRead, "be read", error);
    }
  },
};
