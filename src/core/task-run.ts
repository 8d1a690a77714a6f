import type { TaskState } from "../domain/states.js";
import { defaultTerminate, type StreamName, type TerminateOptions } from "../domain/task.js";
import type { ExecHandle, TaskUsage } from "../executor/runner.js";
import type { OutputSpool } from "../store/spool.js";
import { createDeadline } from "./deadline.js";

/** Why a task is being stopped: the final state, legacy error code and message it ends with. */
export interface StopReason {
  readonly state: TaskState;
  readonly errorCode: number;
  readonly message: string;
}

/** The spools a task's command writes its output into. */
export type Spools = Readonly<Record<StreamName, OutputSpool>>;

/**
 * Where a task's run is. Each phase follows the one before (a phase may be skipped, never
 * gone back to):
 * - `pending`: submitted, not yet handed to the scheduler (a subtask waiting for its turn);
 * - `waiting`: asking for a slot;
 * - `starting`: holding a slot, preparing the work dir and files, spawning;
 * - `running`: the command runs under `handle`;
 * - `settling`: the command ended; files are read back and subtasks run;
 * - `done`: the task is final.
 */
export type RunPhase =
  | { readonly kind: "pending" }
  | { readonly kind: "waiting" }
  | { readonly kind: "starting" }
  | { readonly kind: "running"; readonly handle: ExecHandle }
  | { readonly kind: "settling" }
  | { readonly kind: "done" };

const order: Readonly<Record<RunPhase["kind"], number>> = { pending: 0, waiting: 1, starting: 2, running: 3, settling: 4, done: 5 };

/** Options of a {@link TaskRun}. */
export interface TaskRunOptions {
  /** True when an attached caller (RunTask) reads every byte from the spools' live queues. */
  readonly attached?: boolean;
  /**
   * Called with a failure of a terminate the run sent on its own (a deadline, a late stop);
   * the core reports it as an internal error. Every run that may run a command is given one.
   */
  readonly onError?: (error: unknown) => void;
}

/**
 * One task's run, from its submission to its final state: the one place its phase changes
 * ({@link TaskRun.setState}), its stop reason (the first one wins), its deadlines, its
 * spools and usage, and the promises "started" and "done" it resolves itself.
 */
export class TaskRun {
  #phase: RunPhase = { kind: "pending" };
  #reason: StopReason | undefined;
  // Made on first use: the node holds a run for each of up to 100,000 kept tasks, most of them
  // loaded final, which never need a signal.
  #scope: AbortController | undefined;
  readonly #clears: (() => void)[] = [];
  readonly #onError: (error: unknown) => void;
  #resolveStarted!: () => void;
  #resolveDone!: () => void;
  #spools: Spools | undefined;
  #attachedSpools: Spools | undefined;
  /** The most recent usage sample while the command runs. */
  #usage: TaskUsage | undefined;

  /** True when an attached caller (RunTask) reads every byte, past the cap too. */
  readonly attached: boolean;
  /** Resolves once the command has started, or once it is known it never will. */
  readonly started: Promise<void>;
  /** Resolves once the task is final (its own command and its sync subtasks). */
  readonly done: Promise<void>;

  constructor(options: TaskRunOptions = {}) {
    this.attached = options.attached === true;
    this.#onError = options.onError ?? (() => undefined); // a run with no reporter (loaded final) sends no terminate of its own
    this.started = new Promise((resolve) => (this.#resolveStarted = resolve));
    this.done = new Promise((resolve) => (this.#resolveDone = resolve));
  }

  /** A run that is over already: a task loaded from the store. */
  static finished(): TaskRun {
    const run = new TaskRun();
    run.setState({ kind: "done" });
    return run;
  }

  /** The current phase. */
  get state(): RunPhase {
    return this.#phase;
  }

  /** True until the task is final. */
  get live(): boolean {
    return this.#phase.kind !== "done";
  }

  /** The running command, while there is one. */
  get handle(): ExecHandle | undefined {
    return this.#phase.kind === "running" ? this.#phase.handle : undefined;
  }

  /** Why the run was stopped, the first reason given; undefined when nobody stopped it. */
  get stopReason(): StopReason | undefined {
    return this.#reason;
  }

  /** Aborted once the run is stopped: ends its wait for a slot. */
  get signal(): AbortSignal {
    if (this.#scope === undefined) {
      this.#scope = new AbortController();
      if (this.#reason !== undefined) this.#scope.abort(this.#reason);
    }
    return this.#scope.signal;
  }

  /** The spools of the command's output while the task is live. */
  get spools(): Spools | undefined {
    return this.live ? this.#spools : undefined;
  }

  /** The spools an attached caller reads, until it lets them go (they outlast the run). */
  get attachedSpools(): Spools | undefined {
    return this.#attachedSpools;
  }

  /** The latest usage sample while the task is live. */
  get usage(): TaskUsage | undefined {
    return this.live ? this.#usage : undefined;
  }

  /** Keeps the latest usage sample. */
  noteUsage(usage: TaskUsage): void {
    if (this.live) this.#usage = usage;
  }

  /** Gives the run the spools its command writes; an attached run's caller reads them live. */
  useSpools(spools: Spools): void {
    this.#spools = spools;
    if (this.attached) {
      spools.stdout.attachLive();
      spools.stderr.attachLive();
      this.#attachedSpools = spools;
    }
  }

  /** Lets the attached caller's spools go: the command's writes no longer wait for it. */
  detachSpools(): void {
    const spools = this.#attachedSpools;
    if (spools === undefined) return;
    spools.stdout.detachLive();
    spools.stderr.detachLive();
    this.#attachedSpools = undefined;
  }

  /**
   * Moves the run to a later phase; the one place the phase changes. Reaching "running"
   * resolves `started` and applies a stop that came while the command was starting;
   * reaching "settling" or "done" resolves `started` too (nothing will start any more);
   * "done" also resolves `done` and clears the run's deadlines. A move backwards is a bug.
   */
  setState(next: RunPhase): void {
    const from = this.#phase;
    if (order[next.kind] < order[from.kind] || (from.kind === "done" && next.kind === "done")) {
      throw new Error(`a task run cannot go from ${from.kind} to ${next.kind}`);
    }
    this.#phase = next;
    if (order[next.kind] >= order.running) this.#resolveStarted();
    if (next.kind === "running" && this.#reason !== undefined) {
      // A stop that arrived while the process was starting applies now, by the caller's
      // default policy: the one it asked with had nothing to signal yet.
      next.handle.terminate(defaultTerminate).catch(this.#onError);
    }
    if (next.kind === "done") {
      for (const clear of this.#clears.splice(0)) clear();
      this.#spools = undefined;
      this.#usage = undefined;
      this.#resolveDone();
    }
  }

  /**
   * Stops the run for `reason`; the first reason given is the one the task ends with. A run
   * waiting for a slot stops waiting; a running command is terminated by `policy` (settles
   * when the terminate algorithm has run); a command still starting is terminated once it
   * runs. A run that is done is left alone.
   */
  stop(reason: StopReason, policy: TerminateOptions): Promise<void> {
    if (!this.live) return Promise.resolve();
    this.#reason ??= reason;
    this.#scope?.abort(reason);
    return this.handle?.terminate(policy) ?? Promise.resolve();
  }

  /**
   * Arms a deadline of the run, `ms` from now: when it passes before the run is done,
   * `onPass` is called (it stops the run, or its subtree). Returns the function that clears
   * it sooner; the run clears it when done at the latest.
   */
  deadline(ms: number, onPass: () => Promise<void>): () => void {
    if (!this.live || !Number.isFinite(ms)) return () => undefined;
    const deadline = createDeadline(ms);
    const fire = (): void => void onPass().catch(this.#onError);
    deadline.signal.addEventListener("abort", fire, { once: true });
    const clear = (): void => {
      deadline.signal.removeEventListener("abort", fire);
      deadline.clear();
    };
    this.#clears.push(clear);
    return clear;
  }
}
