import { posix } from "node:path";
import type { SFTPWrapper, Stats } from "ssh2";
import { DrceError, ErrorCode } from "../../domain/errors.js";
import { fileNameProblem } from "../../domain/validate.js";
import type { FileOps } from "../runner.js";
import type { SshPool } from "./ssh-pool.js";
import { describeTarget, type SshTarget } from "./ssh-target.js";

/** SFTP status code for a missing file (SSH_FX_NO_SUCH_FILE). */
const noSuchFile = 2;

type SftpError = Error & { code?: number | string };

const isMissing = (error: unknown): boolean => (error as SftpError | undefined)?.code === noSuchFile;

/** The few SFTP calls file operations need, as promises. */
class Sftp {
  constructor(private readonly sftp: SFTPWrapper) {}

  realpath(path: string): Promise<string> {
    return new Promise((resolve, reject) => this.sftp.realpath(path, (error, abs) => (error ? reject(error) : resolve(abs))));
  }

  lstat(path: string): Promise<Stats | undefined> {
    return new Promise((resolve, reject) =>
      this.sftp.lstat(path, (error, stats) => (error ? (isMissing(error) ? resolve(undefined) : reject(error)) : resolve(stats))),
    );
  }

  stat(path: string): Promise<Stats | undefined> {
    return new Promise((resolve, reject) =>
      this.sftp.stat(path, (error, stats) => (error ? (isMissing(error) ? resolve(undefined) : reject(error)) : resolve(stats))),
    );
  }

  mkdir(path: string): Promise<void> {
    return new Promise((resolve, reject) => this.sftp.mkdir(path, { mode: 0o700 }, (error) => (error ? reject(error) : resolve())));
  }

  unlink(path: string): Promise<boolean> {
    return new Promise((resolve, reject) =>
      this.sftp.unlink(path, (error) => (error ? (isMissing(error) ? resolve(false) : reject(error)) : resolve(true))),
    );
  }

  writeFile(path: string, data: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.sftp.writeFile(path, data, { mode: 0o600 }, (error) => (error ? reject(error) : resolve())));
  }

  /** Reads at most `limit + 1` bytes, so a caller can tell a file over its limit. */
  async readUpTo(path: string, limit: number): Promise<Buffer> {
    const handle = await new Promise<Buffer>((resolve, reject) => this.sftp.open(path, "r", (error, h) => (error ? reject(error) : resolve(h))));
    try {
      const chunks: Buffer[] = [];
      let total = 0;
      for (;;) {
        const want = Math.min(32 * 1024, limit + 1 - total);
        if (want <= 0) break;
        const buffer = Buffer.alloc(want);
        const read = await new Promise<number>((resolve, reject) =>
          this.sftp.read(handle, buffer, 0, want, total, (error, bytesRead) => {
            // Some servers report end of file as an error with the EOF status.
            if (error) return (error as SftpError).code === 1 ? resolve(0) : reject(error);
            resolve(bytesRead);
          }),
        );
        if (read === 0) break;
        chunks.push(buffer.subarray(0, read));
        total += read;
      }
      return Buffer.concat(chunks);
    } finally {
      await new Promise<void>((resolve) => this.sftp.close(handle, () => resolve()));
    }
  }
}

/** Tells whether `path` is `root` or lies under it (both absolute, normalised). */
function within(root: string, path: string): boolean {
  return path === root || path.startsWith(root === "/" ? "/" : `${root}/`);
}

/**
 * File operations over SFTP on one SSH target, in the remote working directory.
 * Every call uses a channel of the pooled connection of that target.
 *
 * Working directories: a relative `workDir` (or one starting with `~/`) is taken from the
 * remote user's home; `prepareWorkDir` refuses an empty one, so the core passes
 * `.drce/tasks/<task id>` for SSH tasks whose request names no directory.
 *
 * Confinement: names are checked lexically by the domain; here each name is resolved with
 * the server's realpath, and a name that leads out of the working directory through a
 * symlink is refused with the legacy code of the operation (201 write, 202 remove, 203 read).
 */
export function createSftpFileOps(pool: SshPool, target: SshTarget): FileOps {
  const where = describeTarget(target);

  const failure = (code: number, what: string, error: unknown): DrceError => {
    if (error instanceof DrceError) return error;
    const reason = (error as SftpError | undefined)?.code === 3 ? "permission denied" : isMissing(error) ? "no such file or directory" : "SFTP error";
    return new DrceError("unavailable", `${what} on ${where} failed: ${reason}`, { legacyCode: code, cause: error });
  };

  const checkName = (name: string, code: number): string[] => {
    const problem = fileNameProblem(name);
    if (problem !== undefined) throw new DrceError("invalid", `file ${JSON.stringify(name)}: ${problem}`, { legacyCode: code });
    return name.split("/").filter((part) => part !== "" && part !== ".");
  };

  const escape = (name: string, code: number): DrceError =>
    new DrceError("invalid", `file ${JSON.stringify(name)}: path escapes the working directory`, { legacyCode: code });

  /** The absolute form of a remote directory: relative ones (and `~/...`) start at the home directory. */
  const absolute = async (sftp: Sftp, dir: string): Promise<string> => {
    const relative = dir === "~" ? "." : dir.startsWith("~/") ? dir.slice(2) : dir;
    if (relative.startsWith("/")) return posix.normalize(relative);
    const home = await sftp.realpath(".");
    return posix.join(home, relative);
  };

  const root = async (sftp: Sftp, workDir: string, code: number): Promise<string> => {
    if (workDir === "") throw new DrceError("invalid", "an SSH task needs a working directory", { legacyCode: code });
    try {
      return await sftp.realpath(await absolute(sftp, workDir));
    } catch (error) {
      throw failure(code, "resolving the working directory", error);
    }
  };

  return {
    async prepareWorkDir(workDir: string): Promise<string> {
      if (workDir === "") {
        throw new DrceError("invalid", "an SSH task needs a working directory (the core passes .drce/tasks/<id>)", { legacyCode: ErrorCode.SetHomeDir });
      }
      return pool.withSftp(target, async (raw) => {
        const sftp = new Sftp(raw);
        try {
          const full = await absolute(sftp, workDir);
          let path = "/";
          for (const part of full.split("/").filter((p) => p !== "")) {
            path = posix.join(path, part);
            const stats = await sftp.stat(path);
            if (stats === undefined) {
              try {
                await sftp.mkdir(path);
              } catch (error) {
                // Another task may have made it meanwhile.
                if ((await sftp.stat(path))?.isDirectory() !== true) throw error;
              }
            } else if (!stats.isDirectory()) {
              throw new DrceError("invalid", `working directory ${workDir} on ${where} is not a directory`, { legacyCode: ErrorCode.SetHomeDir });
            }
          }
          return await sftp.realpath(full);
        } catch (error) {
          throw failure(ErrorCode.SetHomeDir, `preparing working directory ${workDir}`, error);
        }
      });
    },

    async write(workDir: string, name: string, data: Uint8Array): Promise<void> {
      const code = ErrorCode.FileCreate;
      const parts = checkName(name, code);
      await pool.withSftp(target, async (raw) => {
        const sftp = new Sftp(raw);
        const base = await root(sftp, workDir, code);
        try {
          let dir = base;
          for (const part of parts.slice(0, -1)) {
            const next = posix.join(dir, part);
            if ((await sftp.lstat(next)) === undefined) await sftp.mkdir(next);
            dir = await sftp.realpath(next);
            if (!within(base, dir)) throw escape(name, code);
          }
          const path = posix.join(dir, parts[parts.length - 1] ?? "");
          const stats = await sftp.lstat(path);
          if (stats?.isSymbolicLink() === true) {
            // Writing opens through the link: its target must exist and stay inside.
            let resolved: string;
            try {
              resolved = await sftp.realpath(path);
            } catch {
              throw escape(name, code);
            }
            if (!within(base, resolved)) throw escape(name, code);
          }
          await sftp.writeFile(path, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
        } catch (error) {
          throw failure(code, `writing file ${JSON.stringify(name)}`, error);
        }
      });
    },

    async remove(workDir: string, name: string): Promise<void> {
      const code = ErrorCode.FileDeleteBefore;
      const parts = checkName(name, code);
      await pool.withSftp(target, async (raw) => {
        const sftp = new Sftp(raw);
        const base = await root(sftp, workDir, code);
        try {
          let parent: string;
          try {
            parent = await sftp.realpath(posix.join(base, ...parts.slice(0, -1)));
          } catch (error) {
            if (isMissing(error)) return;
            throw error;
          }
          if (!within(base, parent)) throw escape(name, code);
          // unlink removes a symlink itself, never its target.
          await sftp.unlink(posix.join(parent, parts[parts.length - 1] ?? ""));
        } catch (error) {
          throw failure(code, `removing file ${JSON.stringify(name)}`, error);
        }
      });
    },

    async read(workDir: string, name: string, maxBytes: number): Promise<Uint8Array> {
      const code = ErrorCode.FileRead;
      const parts = checkName(name, code);
      return pool.withSftp(target, async (raw) => {
        const sftp = new Sftp(raw);
        const base = await root(sftp, workDir, code);
        try {
          const path = await sftp.realpath(posix.join(base, ...parts));
          if (!within(base, path)) throw escape(name, code);
          const stats = await sftp.stat(path);
          if (stats === undefined) throw new DrceError("invalid", `file ${JSON.stringify(name)} does not exist`, { legacyCode: code });
          if (!stats.isFile()) throw new DrceError("invalid", `file ${JSON.stringify(name)} is not a regular file`, { legacyCode: code });
          if (stats.size > maxBytes) throw new DrceError("exhausted", `file ${JSON.stringify(name)} is larger than ${maxBytes} bytes`, { legacyCode: code });
          const data = await sftp.readUpTo(path, maxBytes);
          if (data.length > maxBytes) throw new DrceError("exhausted", `file ${JSON.stringify(name)} is larger than ${maxBytes} bytes`, { legacyCode: code });
          return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        } catch (error) {
          if (isMissing(error)) throw new DrceError("invalid", `file ${JSON.stringify(name)} does not exist`, { legacyCode: code, cause: error });
          throw failure(code, `reading file ${JSON.stringify(name)}`, error);
        }
      });
    },
  };
}
