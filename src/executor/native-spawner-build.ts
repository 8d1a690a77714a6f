import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { accessSync, constants as fsConstants, existsSync, readFileSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The compiler's flags; part of the cache key, so a change of them builds anew. */
const compileFlags = ["-O2", "-std=gnu11", "-Wall"];

/** Where a native spawner binary is, or why there is none. */
export type NativeSpawnerBinary = { readonly ok: true; readonly path: string } | { readonly ok: false; readonly reason: string };

/** Options of {@link buildNativeSpawner}. */
export interface NativeSpawnerBuildOptions {
  /**
   * The directory the binary is kept in, under a name made of its source's hash (built
   * once per source and machine). Default: `$XDG_CACHE_HOME/drce`, else `~/.cache/drce`.
   */
  readonly cacheDir?: string | undefined;
  /** The PATH the compiler `cc` is looked up in. Default: this process's. */
  readonly path?: string | undefined;
}

/**
 * The source of the native spawner: beside this module in the sources (src/executor/native),
 * in dist/native/ beside a bundle (`npm run build` copies it there), or in the checkout's
 * sources when a bundle runs from a checkout.
 */
function sourcePath(): string | undefined {
  const candidates = [new URL("./native/spawner.c", import.meta.url), new URL("../src/executor/native/spawner.c", import.meta.url)];
  for (const candidate of candidates) {
    const path = fileURLToPath(candidate);
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** The default cache directory of {@link NativeSpawnerBuildOptions.cacheDir}. */
export function defaultCacheDir(): string {
  const base = process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache");
  return join(base, "drce");
}

/** Finds `cc` in a PATH, as execvp would; undefined where there is none. */
function findCompiler(path: string): string | undefined {
  for (const dir of path.split(":")) {
    if (dir === "") continue;
    const candidate = join(dir, "cc");
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // Not in this directory: the next one.
    }
  }
  return undefined;
}

const compile = (compiler: string, source: string, output: string, path: string): Promise<void> =>
  new Promise((resolve, reject) => {
    execFile(compiler, [...compileFlags, "-o", output, source], { env: { ...process.env, PATH: path }, timeout: 60_000 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${compiler} failed: ${stderr.trim().split("\n").slice(-3).join(" ") || error.message}`));
      else resolve();
    });
  });

/** Builds in flight or done, by cache path: a process compiles each source once. */
const builds = new Map<string, Promise<NativeSpawnerBinary>>();

/**
 * Finds the native spawner's binary for this source, compiling it with `cc` the first time
 * (into a temporary name, then renamed, so that nodes starting together never run a half
 * written binary). Resolves to why there is none (no source beside the code, no compiler,
 * a failed compilation) instead of rejecting: the node then uses the Node.js spawner.
 */
export function buildNativeSpawner(options: NativeSpawnerBuildOptions = {}): Promise<NativeSpawnerBinary> {
  const source = sourcePath();
  if (source === undefined) return Promise.resolve({ ok: false, reason: "the native spawner's source is not installed" });
  const text = readFileSync(source);
  const hash = createHash("sha256").update(text).update(compileFlags.join(" ")).digest("hex").slice(0, 16);
  const binary = join(options.cacheDir ?? defaultCacheDir(), `spawner-${hash}`);
  const path = options.path ?? process.env["PATH"] ?? "";
  const key = `${binary}\0${path}`;
  let build = builds.get(key);
  if (build === undefined) {
    build = (async (): Promise<NativeSpawnerBinary> => {
      try {
        accessSync(binary, fsConstants.X_OK);
        return { ok: true, path: binary };
      } catch {
        // Not built yet on this machine: compiled below.
      }
      const compiler = findCompiler(path);
      if (compiler === undefined) return { ok: false, reason: "no C compiler (cc) is on the PATH" };
      const dir = join(binary, "..");
      const temporary = `${binary}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
      try {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        await compile(compiler, source, temporary, path);
        await rename(temporary, binary);
        return { ok: true, path: binary };
      } catch (error) {
        await rm(temporary, { force: true }).catch(() => undefined); // nothing to remove when the compiler made no file
        return { ok: false, reason: `the native spawner could not be compiled: ${(error as Error).message}` };
      }
    })();
    builds.set(key, build);
  }
  return build;
}
