import { randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, write } from "node:fs";
import { access, mkdir, readdir, rmdir } from "node:fs/promises";
import { join } from "node:path";

/**
 * How this host can contain a task's processes in a control group, as found by
 * {@link detectCgroups}. The paths are drce's parent groups, under which each task gets
 * a group of its own.
 */
export type CgroupSupport =
  | {
      /** cgroup v2 (the unified hierarchy). */
      readonly version: 2;
      /** The parent group, e.g. /sys/fs/cgroup/drce. */
      readonly parent: string;
      /** Whether groups have `cgroup.kill` (Linux 5.14 and later). */
      readonly kill: boolean;
    }
  | {
      /** cgroup v1 (one hierarchy per controller). */
      readonly version: 1;
      /** The parent group in the freezer hierarchy, e.g. /sys/fs/cgroup/freezer/drce. */
      readonly freezer: string;
      /** The parent group in the pids hierarchy, when that controller is mounted and writable. */
      readonly pids: string | undefined;
    };

/** fs.write of a string, as a promise. */
const writeAsync = (fd: number, text: string): Promise<void> =>
  new Promise((resolve, reject) => write(fd, text, (error) => (error ? reject(error) : resolve())));

/** The name of drce's parent group in every hierarchy. */
const parentName = "drce";

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * Creates `parent` if needed and proves that groups can be made in it by creating and
 * removing a probe group. Returns whether the probe group had `file` (empty: no check),
 * or undefined when the parent is not writable.
 */
async function probe(parent: string, file: string): Promise<{ hasFile: boolean } | undefined> {
  try {
    await mkdir(parent, { recursive: true });
    const dir = join(parent, `probe-${process.pid}-${randomBytes(4).toString("hex")}`);
    await mkdir(dir);
    try {
      return { hasFile: file === "" ? true : await exists(join(dir, file)) };
    } finally {
      await rmdir(dir);
    }
  } catch {
    // A hierarchy the node cannot make groups in is no support: tasks get process groups only.
    return undefined;
  }
}

/**
 * Finds how tasks can be contained on this host, and creates drce's parent group. cgroup v2
 * is used when `root` is a v2 mount (it has cgroup.controllers), or when a v2 hierarchy with
 * `cgroup.kill` is mounted at `root`/unified beside v1 controllers; otherwise the v1 freezer
 * hierarchy (`root`/freezer, required, for freezing a group before killing it) with the
 * v1 pids hierarchy (`root`/pids, when present); otherwise a v2 hierarchy mounted at
 * `root`/unified beside v1 controllers (the "hybrid" layout). Resolves to undefined when
 * none is mounted or none is writable (not root, read-only mount): tasks then run
 * uncontained and only their process group can be signalled.
 */
export async function detectCgroups(root = "/sys/fs/cgroup"): Promise<CgroupSupport | undefined> {
  if (await exists(join(root, "cgroup.controllers"))) return detectV2(root);
  // Hybrid layout: a v2 hierarchy with cgroup.kill kills a whole group in one write, where
  // v1 needs freeze, kill, thaw; prefer it when it is writable.
  if (await exists(join(root, "unified", "cgroup.controllers"))) {
    const unified = await detectV2(join(root, "unified"));
    if (unified?.version === 2 && unified.kill) return unified;
  }
  if (await exists(join(root, "freezer", "cgroup.procs"))) {
    const freezer = join(root, "freezer", parentName);
    const frozen = await probe(freezer, "freezer.state");
    if (frozen?.hasFile === true) {
      let pids: string | undefined;
      if (await exists(join(root, "pids", "cgroup.procs"))) {
        const candidate = join(root, "pids", parentName);
        if ((await probe(candidate, "pids.max"))?.hasFile === true) pids = candidate;
      }
      return { version: 1, freezer, pids };
    }
  }
  if (await exists(join(root, "unified", "cgroup.controllers"))) return detectV2(join(root, "unified"));
  return undefined;
}

async function detectV2(mount: string): Promise<CgroupSupport | undefined> {
  const parent = join(mount, parentName);
  const found = await probe(parent, "cgroup.kill");
  return found === undefined ? undefined : { version: 2, parent, kill: found.hasFile };
}

/** One task's control group; see {@link createTaskCgroup}. */
export interface TaskCgroup {
  /** The group's directories (one per v1 hierarchy, one for v2). */
  readonly dirs: readonly string[];
  /** Moves a process into the group; its later children are born in it. */
  addPid(pid: number): Promise<void>;
  /** The processes in the group now (empty when the group is gone). */
  pids(): Promise<number[]>;
  /**
   * Kills every process of the group, including those that left the task's process
   * group or session, and waits until the group is empty or `timeoutMs` (default 5000)
   * passed; `pids()` tells what, if anything, survived.
   */
  killAll(options?: { readonly timeoutMs?: number }): Promise<void>;
  /** Kills what is left in the group, then removes its directories; a second call does nothing. */
  remove(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every few milliseconds until it is true or the deadline (Date.now() ms) passed. */
async function pollUntil(check: () => Promise<boolean>, deadline: number): Promise<boolean> {
  for (let wait = 1; ; wait = Math.min(wait * 2, 20)) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(Math.min(wait, Math.max(1, deadline - Date.now())));
  }
}

/**
 * A task's group files are read synchronously: they live in memory, a read takes tens of
 * microseconds, and through fs/promises it costs four thread-pool round trips (open, stat,
 * read, close). Writes, and creating and removing groups, take the kernel's cgroup mutex,
 * which a move of a process into a group holds for milliseconds (it waits for an RCU grace
 * period): those go to the thread pool, as one call each (see {@link writeGroupFile}).
 */
function readPids(dir: string): number[] {
  let text: string;
  try {
    text = readFileSync(join(dir, "cgroup.procs"), "latin1");
  } catch {
    // The group is gone: it holds no process.
    return [];
  }
  const pids: number[] = [];
  for (const line of text.split("\n")) {
    const pid = Number(line);
    if (line !== "" && Number.isSafeInteger(pid) && pid > 0) pids.push(pid);
  }
  return pids;
}

function killPid(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // ESRCH: it exited on its own meanwhile.
  }
}

function readTrimmed(path: string): string {
  try {
    return readFileSync(path, "latin1").trim();
  } catch {
    // The group is gone: no state to read, which no poll takes for the state it waits for.
    return "";
  }
}

/**
 * Writes a group file: opened and closed synchronously (neither waits), written in the
 * thread pool (the write may wait for the cgroup mutex).
 */
async function writeGroupFile(path: string, text: string): Promise<void> {
  const fd = openSync(path, "w");
  try {
    await writeAsync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/** Writes a group file, ignoring a failure (the group may be gone). */
async function writeQuietly(path: string, text: string): Promise<void> {
  await writeGroupFile(path, text).catch(() => undefined); // a group that is gone needs no freeze or kill; on a live one the caller's poll times out and the pids left are reported
}

/** Group names: a task id's characters (letters, digits, '.', '_', '-'), never "." or "..". */
function isValidGroupName(name: string): boolean {
  return /^[A-Za-z0-9._-]{1,200}$/.test(name) && name !== "." && name !== "..";
}

/** Lists the groups under drce's parent group (in the freezer hierarchy on v1). */
export async function listTaskCgroups(support: CgroupSupport): Promise<string[]> {
  const parent = support.version === 2 ? support.parent : support.freezer;
  const entries = await readdir(parent, { withFileTypes: true }).catch(() => []); // no parent group yet: no task group was ever made under it
  return entries.filter((entry) => entry.isDirectory() && isValidGroupName(entry.name)).map((entry) => entry.name);
}

/**
 * Creates (or reuses, after a restart) the control group `name` for one task under drce's
 * parent groups. `name` is made of letters, digits, '.', '_' and '-' (at most 200). A
 * process added before it forks keeps all its descendants in the group, so
 * {@link TaskCgroup.killAll} reaches even those that called setsid() or double-forked.
 * On v1 the group exists in the freezer hierarchy and, when mounted, the pids hierarchy.
 */
export async function createTaskCgroup(support: CgroupSupport, name: string): Promise<TaskCgroup> {
  if (!isValidGroupName(name)) throw new TypeError(`cgroup name ${JSON.stringify(name)} is not allowed`);
  const main = support.version === 2 ? join(support.parent, name) : join(support.freezer, name);
  const dirs = support.version === 1 && support.pids !== undefined ? [main, join(support.pids, name)] : [main];
  for (const dir of dirs) await mkdir(dir, { recursive: true });

  const pids = async (): Promise<number[]> => readPids(main);
  const empty = async (): Promise<boolean> => readPids(main).length === 0;

  /** Freezes (true) or thaws (false) the group and waits, briefly, for it to settle. */
  const setFrozen = async (frozen: boolean, deadline: number): Promise<void> => {
    if (support.version === 1) {
      const state = frozen ? "FROZEN" : "THAWED";
      await writeQuietly(join(main, "freezer.state"), state);
      // FREEZING means a task has not stopped yet (e.g. in uninterruptible sleep).
      if (frozen) await pollUntil(async () => readTrimmed(join(main, "freezer.state")) === state, Math.min(deadline, Date.now() + 1000));
    } else {
      await writeQuietly(join(main, "cgroup.freeze"), frozen ? "1" : "0");
      if (frozen) {
        await pollUntil(async () => /^frozen 1$/m.test(readTrimmed(join(main, "cgroup.events"))), Math.min(deadline, Date.now() + 1000));
      }
    }
  };

  const killAll = async (options: { readonly timeoutMs?: number } = {}): Promise<void> => {
    const deadline = Date.now() + (options.timeoutMs ?? 5000);
    if (await empty()) return;
    if (support.version === 2 && support.kill) {
      // cgroup.kill signals every process atomically, forks in flight included.
      do {
        await writeQuietly(join(main, "cgroup.kill"), "1");
        if (await pollUntil(empty, Math.min(deadline, Date.now() + 500))) return;
      } while (Date.now() < deadline);
      return;
    }
    // Without cgroup.kill, freeze the group first: a frozen process cannot fork, so the
    // list read next is complete, and no pid in it can exit and be reused before the kill.
    do {
      await setFrozen(true, deadline);
      try {
        for (const pid of readPids(main)) killPid(pid);
      } finally {
        // Frozen processes die of the pending SIGKILL once thawed.
        await setFrozen(false, deadline);
      }
      if (await pollUntil(empty, Math.min(deadline, Date.now() + 500))) return;
    } while (Date.now() < deadline);
  };

  let removed = false;
  return {
    dirs,
    async addPid(pid: number): Promise<void> {
      if (!Number.isSafeInteger(pid) || pid <= 0) throw new RangeError(`invalid pid ${pid}`);
      for (const dir of dirs) await writeGroupFile(join(dir, "cgroup.procs"), String(pid));
    },
    pids,
    killAll,
    async remove(): Promise<void> {
      if (removed) return;
      if (!(await empty())) await killAll();
      const deadline = Date.now() + 2000;
      for (const dir of dirs) {
        // EBUSY while the last killed processes are still being torn down.
        const gone = await pollUntil(
          () =>
            rmdir(dir).then(
              () => true,
              (error: NodeJS.ErrnoException) => error.code === "ENOENT",
            ),
          deadline,
        );
        if (!gone) throw new Error(`cannot remove control group ${dir}: processes remain in it`);
      }
      removed = true;
    },
  };
}
