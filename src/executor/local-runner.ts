import { constants } from "node:os";
import { pipeline } from "node:stream/promises";
import { spawn } from "node:child_process";
import { ErrorCode } from "../domain/errors.js";
import type { TerminateOptions } from "../domain/task.js";
import { taskEnvironment, shellCommand } from "./env.js";
import { localFiles } from "./local-files.js";
import { readProcStartTicks, createGroupUsageSampler } from "./process-usage.js";
import type { ExecHandle, ExecOutcome, ExecRequest, Runner } from "./runner.js";

/** Options of {@link createLocalRunner}. */
export interface LocalRunnerOptions {
  /**
   * How long output may go on after the leader exited before the rest of the group is
   * killed: a grandchild holding stdout open must not hang the task.
   */
  readonly drainMs?: number;
  /** Variables every task gets besides the minimal base (e.g. DRCE_TASK_ID is added per task). */
  readonly extraEnv?: Readonly<Record<string, string>>;
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
  return {
    files: localFiles,
    async start(request: ExecRequest): Promise<ExecHandle> {
      const { spec } = request;
      const [file, args] = spec.command !== "" ? shellCommand(spec.shell, spec.command) : [spec.argv[0] ?? "", spec.argv.slice(1)];
      // A plain spawn: the hot path of every task, where execa's stream and promise layers
      // cost a third of the throughput and nothing of theirs is used.
      const child = spawn(file, args, {
        cwd: request.workDir,
        env: taskEnvironment(spec.env, { ...options.extraEnv, DRCE_TASK_ID: spec.id }),
        detached: true,
        stdio: ["pipe", "pipe", "pipe"],
      });
      // Settles once the process and its pipes are closed, or it could not start.
      const settled = new Promise<void>((resolve) => {
        child.once("close", () => resolve());
        child.once("error", () => resolve());
      });
      const spawned = await new Promise<{ ok: true } | { ok: false; code: string; message: string }>((resolve) => {
        child.once("spawn", () => resolve({ ok: true }));
        child.once("error", (error: NodeJS.ErrnoException) => resolve({ ok: false, code: error.code ?? "", message: error.message }));
      });
      if (!spawned.ok || child.pid === undefined) {
        await settled;
        const failure = spawned.ok ? { code: "", message: "no pid" } : spawned;
        const outcome: ExecOutcome = {
          kind: "failed",
          errorCode: failure.code === "ENOENT" ? ErrorCode.ShellNotExist : failure.code === "EACCES" ? ErrorCode.ShellCannotExecute : ErrorCode.CommandExecution,
          message: `cannot start ${JSON.stringify(file)}: ${failure.code === "ENOENT" ? "not found" : failure.code === "EACCES" ? "permission denied" : "spawn failed"}`,
        };
        return {
          done: Promise.resolve(outcome),
          terminate: async () => undefined,
          writeInput: async () => undefined,
          endInput: () => undefined,
        };
      }
      const pid = child.pid;
      const pgid = pid; // detached: the leader heads its own group
      let exited = false;
      const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
        child.once("exit", (code, signal) => {
          exited = true;
          resolve({ code, signal });
        });
      });
      // Output is piped at once: execa's streams may already flow, and bytes must not be lost.
      const outputs = Promise.allSettled([
        pipeline(child.stdout, request.stdout, { end: false }),
        pipeline(child.stderr, request.stderr, { end: false }),
      ]);
      const procStartTicks = await readProcStartTicks(pid);
      await request.onSpawn({ pid, pgid, procStartTicks });

      const stdin = child.stdin;
      stdin.on("error", () => undefined); // EPIPE when the command does not read its input
      if (spec.input.length > 0) stdin.write(spec.input);
      if (!spec.openStdin) stdin.end();


      const done = (async (): Promise<ExecOutcome> => {
        const { code, signal } = await exit;
        // Nobody reads stdin any more; an open_stdin pipe must not keep the task waiting.
        if (!stdin.destroyed) stdin.destroy();
        // The leader is gone. Output may still be in flight; give it a bounded drain, then
        // kill what is left of the group so a grandchild holding the pipe cannot hang us.
        const drained = await Promise.race([outputs.then(() => true), sleep(drainMs).then(() => false)]);
        signalGroup(pgid, "SIGKILL");
        if (!drained) {
          const closed = await Promise.race([outputs.then(() => true), sleep(drainMs).then(() => false)]);
          if (!closed) {
            // Something outside the group (a setsid escapee) still holds the pipes.
            child.stdout.destroy();
            child.stderr.destroy();
            await outputs;
          }
        }
        await Promise.race([settled, sleep(drainMs)]);
        const escapedPids: number[] = [];
        const exitStatus = signal !== null ? 128 + signalNumber(signal) : (code ?? 0);
        return { kind: "exited", exitStatus, signal: signal ?? "", escapedPids };
      })();

      const usage = createGroupUsageSampler(pgid);
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
