import { constants } from "node:os";
import { ErrorCode } from "../domain/errors.js";
import type { TerminateOptions } from "../domain/task.js";
import { createContainment, cgroupGate, findExecProblem, gateArgs, type Containment } from "./containment.js";
import { taskEnvironment, shellCommand } from "./env.js";
import { localFiles } from "./local-files.js";
import { listGroupPids, sampleProcess, createGroupUsageSampler } from "./process-usage.js";
import type { ExecHandle, ExecOutcome, ExecRequest, Runner } from "./runner.js";
import { createSpawner, type ProcessExit, type Spawner } from "./spawner.js";

/** Options of {@link createLocalRunner}. */
export interface LocalRunnerOptions {
  /**
   * How long output may go on after the leader exited before the rest of the group is
   * killed: a grandchild holding stdout open must not hang the task.
   */
  readonly drainMs?: number;
  /** Variables every task gets besides the minimal base (e.g. DRCE_TASK_ID is added per task). */
  readonly extraEnv?: Readonly<Record<string, string>>;
  /**
   * How tasks are contained: a control group each where the host allows it (see
   * createContainment), else their process group only. Default: process groups only.
   */
  readonly containment?: Containment;
  /**
   * What starts the commands; default: a spawner of the runner's own that kills the group of
   * every command whose spawn record is not durable yet when this process dies or closes it
   * (see createSpawner's killOnDisconnect).
   */
  readonly spawner?: Spawner;
}

/** Signals a whole process group, ignoring a group that is already gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | number): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Tells whether any process of the group still exists. */
export function groupAlive(pgid: number): boolean {
  return signalGroup(pgid, 0);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until the group is gone or the time is up; true when gone. */
async function waitGroupGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (!groupAlive(pgid)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(Math.min(10, Math.max(1, deadline - Date.now())));
  }
}

/**
 * Runs a terminate algorithm on a process group: alg 1 sends SIGTERM, then SIGKILL after
 * each delay; alg 2 sends `signal` each try. Stops as soon as the group is gone.
 */
export async function terminateGroup(pgid: number, options: TerminateOptions): Promise<void> {
  const tries = Math.max(1, options.repeat);
  const signals =
    options.alg === 2
      ? Array<number>(tries).fill(options.signal)
      : [constants.signals.SIGTERM, ...Array<number>(tries).fill(constants.signals.SIGKILL)];
  for (const signal of signals) {
    if (!signalGroup(pgid, signal)) return;
    if (await waitGroupGone(pgid, Math.max(1, options.delayMs))) return;
  }
}

function signalNumber(name: string): number {
  return (constants.signals as Record<string, number>)[name] ?? 0;
}

/** Runs commands on the node itself, each in its own process group (spawned detached). */
export function createLocalRunner(options: LocalRunnerOptions = {}): Runner {
  const drainMs = options.drainMs ?? 200;
  const containment = options.containment ?? createContainment({ cgroups: undefined });
  // Nothing the runner started may outlive the node unaccounted for, cgroups or not: the
  // spawns in flight when it died are known to the spawner only.
  const spawner = options.spawner ?? createSpawner({ killOnDisconnect: true });
  return {
    files: localFiles,
    close: () => spawner.close(),
    async start(request: ExecRequest): Promise<ExecHandle> {
      const { spec } = request;
      const [file, args] = spec.command !== "" ? shellCommand(spec.shell, spec.command) : [spec.argv[0] ?? "", spec.argv.slice(1)];
      const runAs = request.runAs;
      const identity = runAs === undefined ? {} : { HOME: runAs.home, USER: runAs.name, LOGNAME: runAs.name };
      const env = taskEnvironment(spec.env, { ...options.extraEnv, ...identity, DRCE_TASK_ID: spec.id });
      const contained = await containment.prepare(spec.id);
      // A spawner that creates the command in its group (the native one) needs no gate: the
      // command runs there from its first instruction, and nothing is moved afterwards.
      const direct = contained.cgroup !== undefined && (await spawner.placesIntoCgroups?.()) === true;
      // Otherwise, with a control group the leader starts behind a gate that holds it until
      // it is in the group, so nothing it forks can be born outside. The gate execs the
      // command, so a missing program is found here, as spawn would have found it.
      const gated = contained.cgroup !== undefined && !direct;
      const problem = gated ? findExecProblem(file, request.workDir, env["PATH"] ?? "") : undefined;
      const [spawnFile, spawnArgs] = gated && problem === undefined ? [cgroupGate[0], [...gateArgs(env), file, ...args]] : [file, args];
      const spawned = await spawner.spawn({
        file: problem === undefined ? spawnFile : file,
        args: problem === undefined ? spawnArgs : args,
        cwd: request.workDir,
        env,
        uid: runAs?.uid,
        gid: runAs?.gid,
        // Output is read from the start: the command may be writing already, and bytes must not be lost.
        stdout: request.stdout,
        stderr: request.stderr,
        cgroupDirs: direct ? contained.cgroup?.dirs : undefined,
      });
      if (!spawned.ok) {
        await contained.release();
        // The spawner's own messages name no path of the node's; a spawn error's may.
        const reason = spawned.code === "ENOENT" ? "not found" : spawned.code === "EACCES" ? "permission denied" : spawned.code === "ESPAWNER" ? spawned.message : "spawn failed";
        const outcome: ExecOutcome = {
          kind: "failed",
          errorCode: spawned.code === "ENOENT" ? ErrorCode.ShellNotExist : spawned.code === "EACCES" ? ErrorCode.ShellCannotExecute : ErrorCode.CommandExecution,
          message: `cannot start ${JSON.stringify(file)}: ${reason}`,
        };
        return {
          done: Promise.resolve(outcome),
          terminate: async () => undefined,
          writeInput: async () => undefined,
          endInput: () => undefined,
        };
      }
      const child = spawned.process;
      const pid = child.pid;
      const pgid = pid; // detached: the leader heads its own group
      let exited = false;
      // A spawner that stopped before reporting the exit leaves the status unknown: the
      // task's processes are killed below and the task fails.
      const exit = child.exit.then(
        (result): ProcessExit | undefined => result,
        () => undefined,
      );
      void exit.then(() => {
        exited = true;
      });
      const outputs = child.output;
      const stdin = child.stdin;
      // Into the group first, then open the gate; a failed move still opens it (the task
      // then runs in its process group only, as without cgroups). Moving a process waits
      // for an RCU grace period in the kernel (milliseconds); the spawn record is written
      // meanwhile, so the task does not wait for the two one after the other.
      let inCgroup = direct && contained.placed(child.cgroupPlacement === "failed" ? (child.cgroupError ?? "refused") : child.cgroupPlacement === "none" ? "the spawner did not place it" : undefined);
      // A command started without its gate (the check above saw a problem the spawn did not
      // have) is still moved into the group, but its input gets no gate's newline.
      const gateOpen = gated && problem === undefined;
      const adopted = gated
        ? contained.adopt(pid).then((ok) => {
            inCgroup = ok;
            if (gateOpen) stdin.write("\n");
          })
        : Promise.resolve();
      // One read of the leader's stat gives the spawn record its start time and the task its
      // first usage figures (an extended check before the first periodic sample saw zeros).
      const first = await sampleProcess(pid);
      const procStartTicks = first?.startTicks ?? 0;
      try {
        // Virtual memory is left to the group's first periodic sample: at its exec (or behind
        // its cgroup gate) a program has not reserved its address space yet, and a figure
        // taken then would understate what the command holds at rest.
        const usage = first === undefined ? undefined : { ...first.usage, vramBytes: 0 };
        await Promise.all([request.onSpawn({ pid, pgid, procStartTicks, usage }), adopted]);
        // The spawn record is durable: from here a restart finds this group (by pid and start
        // time, or its cgroup) and kills it, so the spawner no longer has to when the node dies.
        child.release();
      } catch (error) {
        // The spawn could not be recorded (storage failed): a task nobody tracks must not run.
        await adopted;
        await contained.killRest(pgid, procStartTicks);
        await contained.release();
        throw error;
      }
      if (spec.input.length > 0) stdin.write(spec.input);
      if (!spec.openStdin) stdin.end();


      const done = (async (): Promise<ExecOutcome> => {
        const ended = await exit;
        // Nobody reads stdin any more; an open_stdin pipe must not keep the task waiting.
        if (!stdin.destroyed) stdin.destroy();
        // The leader is gone. Output may still be in flight; give it a bounded drain, then
        // kill what is left of the group so a grandchild holding the pipe cannot hang us.
        const drained = await Promise.race([outputs.then(() => true), sleep(drainMs).then(() => false)]);
        // Kills the process group, and through the cgroup whatever left it (setsid).
        const escapedPids = await contained.killRest(pgid, procStartTicks);
        if (!drained) {
          const closed = await Promise.race([outputs.then(() => true), sleep(drainMs).then(() => false)]);
          if (!closed) {
            // Something outside the group (a setsid escapee) still holds the pipes.
            child.dropOutput();
            await outputs;
          }
        }
        await contained.release();
        if (ended === undefined) return { kind: "failed", errorCode: ErrorCode.CommandExecution, message: "the process spawner stopped while the command ran; its exit status is unknown and its processes were killed" };
        const { code, signal } = ended;
        const exitStatus = signal !== null ? 128 + signalNumber(signal) : (code ?? 0);
        return { kind: "exited", exitStatus, signal: signal ?? "", escapedPids };
      })();

      // In a cgroup, usage counts every process of the task, those that left its group too.
      const cgroup = contained.cgroup;
      const usage = createGroupUsageSampler(pgid, cgroup === undefined ? {} : { members: async () => (inCgroup ? cgroup.pids() : listGroupPids(pgid)) });
      return {
        done,
        terminate: (terminateOptions) => terminateGroup(pgid, terminateOptions),
        writeInput: (data) =>
          new Promise<void>((resolve, reject) => {
            if (stdin.writableEnded || stdin.destroyed) return reject(new Error("stdin is closed"));
            stdin.write(data, (error) => (error ? reject(error) : resolve()));
          }),
        endInput: () => {
          if (!stdin.writableEnded) stdin.end();
        },
        sampleUsage: async () => (exited ? undefined : usage.sample()),
      };
    },
  };
}
