import { randomBytes } from "node:crypto";
import type { Readable, Writable } from "node:stream";
import type { ClientChannel } from "ssh2";
import { DrceError, ErrorCode } from "../../domain/errors.js";
import type { TerminateOptions } from "../../domain/task.js";
import type { ExecHandle, ExecOutcome, ExecRequest, SpawnInfo } from "../runner.js";
import {
  buildRemoteCommand,
  failMarker,
  reapGroupCommand,
  signalAndWaitCommand,
  signalName,
  signalNumber,
  spawnMarker,
} from "./remote-command.js";
import type { SshPool } from "./ssh-pool.js";
import { describeTarget, type SshTarget } from "./ssh-target.js";

/** Timings of one remote command. */
export interface SshExecTimings {
  /** How long to wait for the wrapper's report before giving up on the start, ms. */
  readonly startTimeoutMs: number;
  /** After the leader exits, how long output may keep flowing before the rest of its group is killed, ms. */
  readonly drainMs: number;
  /** After the group was killed, how long output may stay idle without EOF before the channel is closed, ms. */
  readonly closeWaitMs: number;
}

/** Stderr bytes kept while looking for the wrapper's report; a wrapper that says more is broken. */
const maxHeadBytes = 1 << 20;

/**
 * Starts a request's command over SSH under the remote wrapper of {@link buildRemoteCommand}.
 * Resolves once the wrapper reported the process (and `onSpawn` was awaited), or with a
 * handle whose outcome is "failed" when the wrapper refused to start it. Rejects with a
 * DrceError when no channel could be opened or the wrapper never reported.
 */
export async function startSshExec(pool: SshPool, target: SshTarget, request: ExecRequest, timings: SshExecTimings): Promise<ExecHandle> {
  const spec = request.spec;
  const nonce = randomBytes(8).toString("hex");
  const command = buildRemoteCommand({
    command: spec.command,
    argv: spec.argv,
    shell: spec.shell,
    env: spec.env,
    workDir: request.workDir,
    nonce,
  });
  let execution: SshExecution | undefined;
  await pool.exec(target, command, (channel) => {
    execution = new SshExecution(pool, target, request, timings, channel, nonce);
  });
  if (execution === undefined) throw new DrceError("internal", "the SSH channel opened without being set up");
  return execution.started;
}

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T | PromiseLike<T>): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T | PromiseLike<T>) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });

/** Counts sink writes whose callbacks have not run yet, so "done" means "written". */
class WriteTracker {
  private pending = 0;
  private waiters: (() => void)[] = [];

  write(sink: Writable, chunk: Buffer): boolean {
    this.pending += 1;
    return sink.write(chunk, () => {
      this.pending -= 1;
      if (this.pending === 0) for (const waiter of this.waiters.splice(0)) waiter();
    });
  }

  flushed(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

class SshExecution implements ExecHandle {
  readonly started: Promise<ExecHandle>;
  readonly done: Promise<ExecOutcome>;

  private readonly startDeferred = deferred<ExecHandle>();
  private readonly doneDeferred = deferred<ExecOutcome>();
  private readonly stdoutEnded: Promise<void>;
  private readonly stderrEnded: Promise<void>;
  private readonly closed: Promise<void>;
  private readonly exited = deferred<void>();
  private readonly tracker = new WriteTracker();
  private exit: { code: number | null; signal: string } | undefined;
  private spawn: SpawnInfo | undefined;
  private settled = false;
  private stdinEnded = false;
  private head: Buffer = Buffer.alloc(0);
  private readonly spawnPattern: RegExp;
  private readonly failPattern: RegExp;
  private startTimer: NodeJS.Timeout | undefined;
  /** Sinks that asked us to wait (write returned false) and have not drained yet. */
  private blockedSinks = 0;
  /** When output last moved, for telling a stalled channel from a slow sink. */
  private lastOutputAt = 0;

  constructor(
    private readonly pool: SshPool,
    private readonly target: SshTarget,
    private readonly request: ExecRequest,
    private readonly timings: SshExecTimings,
    private readonly channel: ClientChannel,
    nonce: string,
  ) {
    this.started = this.startDeferred.promise;
    this.done = this.doneDeferred.promise;
    this.spawnPattern = new RegExp(`^${spawnMarker} (\\d+) (\\d+) ${nonce}$`);
    this.failPattern = new RegExp(`^${failMarker} (\\d+) ${nonce}$`);
    // Listen for the ends from the start: stderr is read (for the report) before its pump exists.
    this.stdoutEnded = new Promise((resolve) => channel.once("end", resolve));
    this.stderrEnded = new Promise((resolve) => channel.stderr.once("end", resolve));
    this.closed = new Promise((resolve) => channel.once("close", resolve));
    channel.on("error", () => undefined); // a channel error is followed by its close, which settles the command (lost connection included)
    channel.stderr.on("error", () => undefined); // likewise: stderr ends with its channel
    channel.on("exit", (code: number | null, signal?: string) => {
      this.exit = { code: typeof code === "number" ? code : null, signal: typeof signal === "string" ? signal : "" };
      this.exited.resolve();
    });
    void this.closed.then(() => this.exited.resolve());

    const input = request.spec.input;
    if (input.length > 0) channel.write(Buffer.from(input.buffer, input.byteOffset, input.byteLength));
    if (!request.spec.openStdin) {
      this.stdinEnded = true;
      channel.end();
    }

    this.startTimer = setTimeout(() => {
      this.abortStart(new DrceError("unavailable", `the command on ${describeTarget(target)} did not start within ${timings.startTimeoutMs} ms`));
    }, timings.startTimeoutMs);
    this.startTimer.unref();
    channel.stderr.on("data", this.onHead);
    void this.stderrEnded.then(() => this.onHeadEnd());
    void this.closed.then(() => this.onHeadEnd());
  }

  private readonly onHead = (chunk: Buffer): void => {
    if (this.spawn !== undefined || this.settled) return;
    this.head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
    let start = 0;
    for (;;) {
      const newline = this.head.indexOf(10, start);
      if (newline < 0) break;
      const line = this.head.subarray(start, newline).toString("latin1");
      const spawned = this.spawnPattern.exec(line);
      if (spawned !== null) {
        const before = this.head.subarray(0, start);
        const after = this.head.subarray(newline + 1);
        this.head = Buffer.alloc(0);
        void this.onSpawned(Number(spawned[1]), Number(spawned[2]), [before, after]);
        return;
      }
      const failed = this.failPattern.exec(line);
      if (failed !== null) {
        this.head = Buffer.alloc(0);
        this.startFailed(Number(failed[1]));
        return;
      }
      start = newline + 1;
    }
    if (this.head.length > maxHeadBytes) {
      this.abortStart(new DrceError("unavailable", `the command on ${describeTarget(this.target)} did not start: the remote shell wrote too much before it`));
    }
  };

  /** Stderr ended (or the channel closed) before the wrapper reported: the command never ran. */
  private onHeadEnd(): void {
    if (this.spawn !== undefined || this.settled) return;
    const said = this.head.toString("utf8").trim().split("\n")[0]?.slice(0, 200) ?? "";
    void this.exited.promise.then(() => {
      const status = this.exit === undefined ? "no exit status" : this.exit.code !== null ? `exit ${this.exit.code}` : this.exit.signal;
      this.settleStartAsFailed(ErrorCode.CommandExecution, `the command could not be started on ${describeTarget(this.target)} (${status}${said === "" ? "" : `: ${said}`})`);
    });
  }

  private startFailed(code: number): void {
    const spec = this.request.spec;
    const shell = (spec.shell.trim() === "" ? "/bin/sh" : spec.shell.trim().split(/\s+/)[0]) ?? "/bin/sh";
    const messages: Record<number, string> = {
      [ErrorCode.SetHomeDir]: `cannot enter the working directory ${this.request.workDir}`,
      [ErrorCode.SetEnvironment]: "cannot set the environment",
      [ErrorCode.ShellNotExist]: `shell ${shell} does not exist`,
      [ErrorCode.ShellCannotExecute]: `shell ${shell} cannot be executed`,
      [ErrorCode.CommandExecution]: `program ${spec.argv[0] ?? ""} is not found or cannot be executed`,
    };
    this.settleStartAsFailed(code, `${messages[code] ?? "the command could not be started"} on ${describeTarget(this.target)}`);
  }

  private settleStartAsFailed(errorCode: number, message: string): void {
    if (this.settled || this.spawn !== undefined) return;
    this.clearStartTimer();
    this.settled = true;
    this.channel.stderr.off("data", this.onHead);
    this.channel.stderr.resume();
    this.channel.resume();
    this.doneDeferred.resolve({ kind: "failed", errorCode, message });
    this.startDeferred.resolve(this);
  }

  private abortStart(error: DrceError): void {
    if (this.settled || this.spawn !== undefined) return;
    this.clearStartTimer();
    this.settled = true;
    this.channel.stderr.off("data", this.onHead);
    this.channel.close();
    this.doneDeferred.resolve({ kind: "failed", errorCode: ErrorCode.CommandExecution, message: error.message });
    this.startDeferred.reject(error);
  }

  private clearStartTimer(): void {
    if (this.startTimer !== undefined) clearTimeout(this.startTimer);
    this.startTimer = undefined;
  }

  private async onSpawned(pid: number, pgid: number, stderrHead: Buffer[]): Promise<void> {
    this.clearStartTimer();
    const stderr = this.channel.stderr;
    stderr.pause();
    stderr.off("data", this.onHead);
    this.spawn = { pid, pgid, procStartTicks: 0 };
    try {
      await this.request.onSpawn(this.spawn);
    } catch (error) {
      // The core could not record the process: it must not run unrecorded.
      this.settled = true;
      await this.pool.run(this.target, reapGroupCommand(pgid)).catch(() => undefined); // no channel means no connection: the command loses its stdin and stdout with it, and the record failure below is what the core reports
      this.channel.close();
      this.doneDeferred.resolve({ kind: "failed", errorCode: ErrorCode.CommandExecution, message: "the task could not be recorded" });
      this.startDeferred.reject(error);
      return;
    }
    this.startDeferred.resolve(this);
    this.pump(this.channel, this.request.stdout, []);
    this.pump(stderr, this.request.stderr, stderrHead);
    this.doneDeferred.resolve(
      this.finish(pgid).catch(
        (error: unknown): ExecOutcome => ({
          kind: "failed",
          errorCode: ErrorCode.CommandExecution,
          message: error instanceof DrceError ? error.message : "the command's end could not be observed",
        }),
      ),
    );
  }

  /** Copies a channel stream into a sink, pausing the channel while the sink is full. */
  private pump(source: Readable, sink: Writable, head: Buffer[]): void {
    let ok = true;
    for (const chunk of head) if (chunk.length > 0) ok = this.tracker.write(sink, chunk) && ok;
    const resume = (): void => {
      this.blockedSinks -= 1;
      this.lastOutputAt = Date.now();
      source.resume();
    };
    source.on("data", (chunk: Buffer) => {
      this.lastOutputAt = Date.now();
      if (!this.tracker.write(sink, chunk)) {
        source.pause();
        this.blockedSinks += 1;
        sink.once("drain", resume);
      }
    });
    if (ok) {
      source.resume();
    } else {
      this.blockedSinks += 1;
      sink.once("drain", resume);
    }
  }

  /**
   * Waits until the server has sent EOF (all output is then in our buffers). When output
   * stays idle for closeWaitMs without EOF while no sink holds us back, a process outside
   * the group (e.g. one that called setsid) still holds the pipes: close the channel then,
   * rather than wait for it. A slow sink never counts as idle, so no output is cut off.
   */
  private async waitForEof(): Promise<void> {
    const incoming = (): string => (this.channel.incoming as { state?: string } | undefined)?.state ?? "closed";
    this.lastOutputAt = Date.now();
    while (incoming() === "open") {
      if (this.blockedSinks > 0) this.lastOutputAt = Date.now();
      if (Date.now() - this.lastOutputAt > this.timings.closeWaitMs) {
        this.channel.close();
        return;
      }
      await sleep(50);
    }
  }

  private async finish(pgid: number): Promise<ExecOutcome> {
    const outputEnded = Promise.all([this.stdoutEnded, this.stderrEnded]).then(() => true);
    const within = (ms: number): Promise<boolean> => Promise.race([outputEnded, sleep(ms).then(() => false)]);
    await this.exited.promise;
    const exit = this.exit;
    // A grandchild may hold stdout open after the leader exited: give output a moment to end,
    // then kill what is left of the group, which also closes the pipes it held.
    const ended = await within(this.timings.drainMs);
    let escapedPids: number[] = [];
    try {
      const reap = await this.pool.run(this.target, reapGroupCommand(pgid));
      escapedPids = reap.stdout
        .split(/\s+/)
        .filter((s) => /^\d+$/.test(s))
        .map(Number);
    } catch {
      // The connection is gone; nothing can be reaped over it.
    }
    if (!ended) await this.waitForEof();
    await outputEnded;
    await this.closed;
    await this.tracker.flushed();
    this.settled = true;
    if (exit === undefined) {
      return {
        kind: "failed",
        errorCode: ErrorCode.CommandExecution,
        message: `the SSH connection to ${describeTarget(this.target)} was lost while the command ran`,
      };
    }
    if (exit.code !== null) return { kind: "exited", exitStatus: exit.code, signal: "", escapedPids };
    const number = signalNumber(exit.signal) ?? 0;
    return { kind: "exited", exitStatus: 128 + number, signal: exit.signal, escapedPids };
  }

  async terminate(options: TerminateOptions): Promise<void> {
    const spawn = this.spawn;
    if (spawn === undefined || this.settled) return;
    let names: string[];
    if (options.alg === 1) {
      names = ["TERM", "KILL"];
    } else {
      const name = signalName(options.signal);
      if (name === undefined) throw new DrceError("invalid", `signal ${options.signal} is not known`, { legacyCode: ErrorCode.Terminate });
      names = [name];
    }
    const tries = Math.max(1, options.repeat);
    const delayMs = Math.max(0, options.delayMs);
    for (let attempt = 0; attempt < tries; attempt++) {
      for (const name of names) {
        if (this.settled) return;
        let result: { code: number | null };
        try {
          result = await this.pool.run(this.target, signalAndWaitCommand(name, spawn.pgid, delayMs));
        } catch (error) {
          throw new DrceError("unavailable", `cannot signal the task on ${describeTarget(this.target)}`, {
            legacyCode: ErrorCode.Terminate,
            cause: error,
          });
        }
        if (result.code === 0) {
          // The group is gone; let the outcome settle (bounded: the server may be slow to close).
          await Promise.race([this.done, sleep(this.timings.drainMs + 2 * this.timings.closeWaitMs)]);
          return;
        }
      }
    }
  }

  async writeInput(data: Uint8Array): Promise<void> {
    if (this.stdinEnded) throw new DrceError("precondition", "the task's stdin is closed");
    const chunk = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    await new Promise<void>((resolve, reject) => {
      this.channel.write(chunk, (error?: Error | null) =>
        error === undefined || error === null
          ? resolve()
          : reject(new DrceError("unavailable", "cannot write to the task's stdin", { cause: error })),
      );
    });
  }

  endInput(): void {
    if (this.stdinEnded) return;
    this.stdinEnded = true;
    this.channel.end();
  }
}
