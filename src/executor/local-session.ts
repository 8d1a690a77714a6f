import { mkdir, realpath } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve as resolvePath } from "node:path";
import { DrceError, ErrorCode } from "../domain/errors.js";
import type { TaskSpec } from "../domain/task.js";
import { allowedRootOf } from "../domain/validate.js";
import { isInside } from "./local-files.js";
import { signalGroup } from "./local-runner.js";
import { readProcStartTicks } from "./process-usage.js";
import type { FileLocation, RunAs, Runner, SessionRunner } from "./runner.js";
import { handWorkDirTo } from "./users.js";

/** Options of {@link createLocalSession}. */
export interface LocalSessionOptions {
  /** The runner that starts local commands. */
  readonly runner: Runner;
  /** Directories outside a task's own where its work dir and absolute file names may be (`--allow-dir`). */
  readonly allowedDirs: readonly string[];
  /** Decides the user a task runs as, or throws a DrceError refusing it (see core/run-as.ts). */
  readonly runAs?: ((spec: TaskSpec) => RunAs | undefined) | undefined;
}

const outside = (workDir: string): DrceError =>
  new DrceError("invalid", `home_dir ${JSON.stringify(workDir)} is outside the directories this node allows`, { legacyCode: ErrorCode.SetHomeDir });

/**
 * Resolves and checks a local task's working directory: its own in the store, or one its
 * request names inside its own or an allowed directory, symlinks included.
 */
async function confinedWorkDir(spec: TaskSpec, own: string, allowedDirs: readonly string[]): Promise<string> {
  if (spec.workDir === "") return own;
  const wanted = isAbsolute(spec.workDir) ? resolvePath(spec.workDir) : resolvePath(own, spec.workDir);
  const roots = [own, ...allowedDirs];
  // Lexically inside an allowed root before anything is created; symlinks are checked after.
  if (!roots.some((root) => isInside(resolvePath(root), wanted))) throw outside(spec.workDir);
  // A symlink on the way may point out of the roots: check the deepest directory that
  // exists already, by its real path, before creating anything below it.
  let existing = wanted;
  while (!(await realpath(existing).then(() => true, () => false))) existing = dirname(existing);
  const realExisting = await realpath(existing);
  // A root that does not exist (an allowed directory removed since start) contains nothing.
  const realRoots = await Promise.all(roots.map((root) => realpath(root).catch(() => undefined))); // A missing root contains nothing.
  if (!realRoots.some((root) => root !== undefined && isInside(root, realExisting))) throw outside(spec.workDir);
  let real: string;
  try {
    await mkdir(wanted, { recursive: true, mode: 0o700 }).catch(() => undefined); // a directory that cannot be made is found missing by realpath next
    real = await realpath(wanted);
  } catch {
    throw new DrceError("invalid", `home_dir ${JSON.stringify(spec.workDir)} does not exist`, { legacyCode: ErrorCode.SetHomeDir });
  }
  for (const root of roots) {
    const realRoot = await realpath(root).catch(() => undefined); // as above: a missing root contains nothing
    if (realRoot !== undefined && isInside(realRoot, real)) return real;
  }
  throw outside(spec.workDir);
}

/**
 * The session runner of local sessions: work dirs confined to the task's own directory and
 * the allowed ones, absolute file names inside an allowed directory, commands started by the
 * local runner (as the task's user, its work dir handed over), and recovery that kills a
 * dead node's orphan when its pid still has the start time recorded at the spawn.
 */
export function createLocalSession(options: LocalSessionOptions): SessionRunner {
  const { runner, allowedDirs } = options;
  return {
    async prepareWorkDir(spec, place) {
      return runner.files.prepareWorkDir(await confinedWorkDir(spec, place.ownWorkDir, allowedDirs));
    },
    fileLocation(_spec, workDir, name): FileLocation {
      // An absolute name inside an --allow-dir directory lives there, relative to it (the file
      // operations then confine it there, symlinks included, as they confine the work dir).
      const root = allowedRootOf(name, allowedDirs);
      if (root === undefined) return { dir: workDir, name };
      const dir = resolvePath(root);
      return { dir, name: relative(dir, resolvePath(name)) };
    },
    filesFor: () => runner.files,
    userFor: (spec) => options.runAs?.(spec),
    async start(request, place) {
      const { runAs, workDir } = request;
      // The task's own work dir holds what the node wrote for it; another one is the caller's.
      if (runAs !== undefined && workDir === (await realpath(place.ownWorkDir).catch(() => ""))) { // a missing own dir is not the one the task runs in
        await handWorkDirTo(runAs, workDir, place.parents);
      }
      return runner.start(request);
    },
    async reap(status) {
      if (status.pid <= 0 || status.procStartTicks <= 0) return { killed: false };
      // The same pid with the same start time is the same process: pid reuse cannot fool it.
      if ((await readProcStartTicks(status.pid)) !== status.procStartTicks) return { killed: false };
      signalGroup(status.pgid || status.pid, "SIGKILL");
      return { killed: true };
    },
  };
}
