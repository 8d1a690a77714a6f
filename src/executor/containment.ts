import { accessSync, constants as fsConstants, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import { createHash } from "node:crypto";
import { createTaskCgroup, listTaskCgroups, type CgroupSupport, type TaskCgroup } from "./cgroup.js";
import { listProcPids, readAllProcStats } from "./process-usage.js";

/**
 * The program that holds a task's leader until the node has put it into its control group:
 * it reads one line from stdin (the node writes "\n" once the pid is in the group), then
 * execs the command with the same pid. `read` takes a pipe byte by byte, so the task's own
 * input that follows is left for the command.
 */
export const cgroupGate = ["/bin/sh", ["-c", 'read -r _ || exit 125; [ "$1" = keep-pwd ] || unset PWD; shift; exec "$@"', "drce-gate"]] as const;

/**
 * The gate's first argument: the gate's shell exports a PWD of its own, which a task run
 * without a gate would not see; it is kept only when the task's environment asked for one.
 */
export function gateArgs(env: Readonly<Record<string, string | undefined>>): string[] {
  return [...cgroupGate[1], env["PWD"] === undefined ? "drop-pwd" : "keep-pwd"];
}

/** Why a command cannot be executed, as execvp(3) would find it; undefined when it can. */
export type ExecProblem = "ENOENT" | "EACCES";

/**
 * Checks that `file` names an executable the way execvp(3) looks it up (a name with a
 * slash relative to `cwd`, else each directory of `path`). The gate execs the command
 * itself, so without this check a missing program would look like a command exiting 127
 * instead of the "shell not found" error (15) the node reports without a gate.
 */
export function findExecProblem(file: string, cwd: string, path: string): ExecProblem | undefined {
  const candidates = file.includes("/") ? [isAbsolute(file) ? file : resolve(cwd, file)] : path.split(delimiter).filter((d) => d !== "").map((dir) => join(resolve(cwd, dir), file));
  let problem: ExecProblem = "ENOENT";
  for (const candidate of candidates) {
    try {
      if (!statSync(candidate).isFile()) {
        problem = "EACCES";
        continue;
      }
      accessSync(candidate, fsConstants.X_OK);
      return undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EACCES") problem = "EACCES";
    }
  }
  return problem;
}

/** Options of {@link createContainment}. */
export interface ContainmentOptions {
  /** The host's cgroup support; undefined: process groups only. */
  readonly cgroups: CgroupSupport | undefined;
  /**
   * What makes this node's group names its own: nodes on one host share drce's parent
   * group, and task ids repeat across nodes. Default: derived from the process id; a node
   * passes its data directory (see {@link groupPrefixFor}) so a restart finds its groups.
   */
  readonly groupPrefix?: string;
  /** Reports a problem that does not fail the task (a group that could not be made or removed). */
  readonly onWarning?: ((message: string, details: Readonly<Record<string, unknown>>) => void) | undefined;
  /**
   * Reports a failure of the containment itself that leaves the task's processes unknown
   * (/proc could not be read while looking for escaped processes); the task still ends.
   */
  readonly onInternalError?: ((message: string, error: unknown, details: Readonly<Record<string, unknown>>) => void) | undefined;
}

/** How one task's processes are contained; see {@link Containment.prepare}. */
export interface TaskContainment {
  /** The task's control group, or undefined when it runs in a process group only. */
  readonly cgroup: TaskCgroup | undefined;
  /** Moves the leader into the group (before it may fork); false when that failed. */
  adopt(pid: number): Promise<boolean>;
  /**
   * Records where the spawner put the leader when it created it in the group (see the
   * spawner's cgroupDirs): in it, or, given why not, outside it (logged, as a failed
   * {@link adopt} is). Returns whether the leader is in the group.
   */
  placed(error?: string): boolean;
  /**
   * Kills what is left of the task once its leader exited: through the cgroup when there
   * is one, else the process group. Resolves to the pids still alive after that: with a
   * cgroup, those it could not kill; without, the task's processes that left its process
   * group (found by their DRCE_TASK_ID variable) and so could not be reached.
   */
  killRest(pgid: number, leaderStartTicks: number): Promise<number[]>;
  /** Removes the control group (kills anything left first); never throws. */
  release(): Promise<void>;
}

/** Makes per-task containment for the local runner. */
export interface Containment {
  /** Whether tasks get control groups on this node. */
  readonly cgroups: CgroupSupport | undefined;
  /**
   * Prepares the containment of task `taskId`. A group that cannot be created is logged
   * and the task runs in its process group only: containment never fails a task.
   */
  prepare(taskId: string): Promise<TaskContainment>;
  /**
   * Kills the processes of groups this node left behind when it died (a task's setsid
   * grandchildren included) and removes the groups; resolves to how many there were.
   */
  sweep(): Promise<number>;
}

/** The group name prefix of the node that keeps its tasks in `dataDir`. */
export function groupPrefixFor(dataDir: string): string {
  return `n${createHash("sha256").update(dataDir).digest("hex").slice(0, 12)}.`;
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // ESRCH: the group is gone already.
  }
}

/**
 * Finds live processes that started after the task's leader (`pgid`) and carry its
 * DRCE_TASK_ID in their environment: descendants that left the process group with setsid()
 * or setpgid(). Best effort, and cheap on the task's path: only pids above the leader's are
 * looked at (pids grow until they wrap around at pid_max), and only the environment of
 * those born after the leader is read. A process that cleared its environment is not
 * found; only a cgroup follows every child.
 */
export async function findEscapedPids(taskId: string, pgid: number, leaderStartTicks: number, selfPid = process.pid): Promise<number[]> {
  const marker = Buffer.from(`\0DRCE_TASK_ID=${taskId}\0`);
  const stats = await readAllProcStats({}, (await listProcPids()).filter((pid) => pid > pgid));
  const found: number[] = [];
  for (const stat of stats) {
    // Members of the process group were killed with it (they may not have died yet).
    if (stat.startTicks < leaderStartTicks || stat.pgrp === pgid || stat.pid === selfPid || stat.state === "Z" || stat.state === "X") continue;
    const environ = await readFile(`/proc/${stat.pid}/environ`).catch(() => undefined); // exited since the listing, or another user's: not findable this way (see above)
    if (environ === undefined) continue;
    // environ is NUL separated; a leading NUL lets the first variable match too.
    if (Buffer.concat([Buffer.from([0]), environ, Buffer.from([0])]).includes(marker)) found.push(stat.pid);
  }
  return found.sort((a, b) => a - b);
}

/** Creates the per-task containment of the local runner. */
export function createContainment(options: ContainmentOptions): Containment {
  const warn = options.onWarning ?? ((): void => undefined);
  const support = options.cgroups;
  const prefix = options.groupPrefix ?? `p${process.pid}.`;
  return {
    cgroups: support,
    async sweep() {
      if (support === undefined) return 0;
      let swept = 0;
      for (const name of await listTaskCgroups(support)) {
        if (!name.startsWith(prefix)) continue;
        try {
          await (await createTaskCgroup(support, name)).remove();
          swept++;
        } catch (error) {
          warn("cannot remove a control group left by a previous run", { group: name, err: String(error) });
        }
      }
      return swept;
    },
    async prepare(taskId) {
      let cgroup: TaskCgroup | undefined;
      if (support !== undefined) {
        try {
          cgroup = await createTaskCgroup(support, prefix + taskId);
        } catch (error) {
          warn("cannot create a control group for the task; it runs in its process group only", { task: taskId, err: String(error) });
        }
      }
      let adopted = false;
      return {
        cgroup,
        async adopt(pid) {
          if (cgroup === undefined) return false;
          try {
            await cgroup.addPid(pid);
            adopted = true;
          } catch (error) {
            warn("cannot move the task into its control group; it runs in its process group only", { task: taskId, err: String(error) });
          }
          return adopted;
        },
        placed(error) {
          if (cgroup === undefined) return false;
          if (error === undefined) adopted = true;
          else warn("cannot start the task in its control group; it runs in its process group only", { task: taskId, err: error });
          return adopted;
        },
        async killRest(pgid, leaderStartTicks) {
          killGroup(pgid);
          if (cgroup !== undefined && adopted) {
            await cgroup.killAll();
            return cgroup.pids();
          }
          // A /proc that cannot be read leaves the escapees unknown, never the task unfinished.
          return findEscapedPids(taskId, pgid, leaderStartTicks).catch((error: unknown) => {
            options.onInternalError?.("the escaped processes of a task could not be looked for", error, { task: taskId, pgid });
            return [];
          });
        },
        async release() {
          if (cgroup === undefined) return;
          try {
            await cgroup.remove();
          } catch (error) {
            warn("cannot remove the task's control group", { task: taskId, err: String(error) });
          }
        },
      };
    },
  };
}
