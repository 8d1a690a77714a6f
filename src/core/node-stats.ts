import { ErrorCode } from "../domain/errors.js";
import { isFinalState, TaskMode, TaskState } from "../domain/states.js";
import type { TaskStatus } from "../domain/task.js";
import type { TaskEvent } from "./api.js";

/** A minimum, average and maximum over `count` values; all zero when count is zero. */
export interface StatFigure {
  readonly min: number;
  readonly avg: number;
  readonly max: number;
  readonly count: number;
}

/** The statistics of the tasks of one mode (sync or async). */
export interface ModeStats {
  /** Tasks that reached a final state. */
  readonly tasks: number;
  /** Of those, the failures (see {@link isFailure}). */
  readonly failed: number;
  /** Running time of tasks that started a process, ms. */
  readonly timeMs: StatFigure;
  /** Request stdin bytes (`input`) of tasks that started a process. */
  readonly inputBytes: StatFigure;
  /** Bytes written to stdout by tasks that started a process. */
  readonly outputBytes: StatFigure;
  /** Peak TASK_CPU (percent) of tasks with at least one usage sample. */
  readonly cpuPercent: StatFigure;
  /** Peak TASK_RRAM (bytes) of tasks with at least one usage sample. */
  readonly memoryBytes: StatFigure;
  /** Tasks reaching a final state per minute since the start (see {@link PerMinute}). */
  readonly perMinute: StatFigure;
}

/** The node's task statistics at one moment (legacy NODE_MSG_PROPERTIES). */
export interface NodeStatsSnapshot {
  /** When counting began, Unix ms. */
  readonly startedAt: number;
  /** When the snapshot was computed, Unix ms. */
  readonly computedAt: number;
  readonly sync: ModeStats;
  readonly async: ModeStats;
}

/**
 * Tells whether a task's final status is a failure: anything but "finished with exit
 * status 0 and error code 0". A non-zero exit, a termination, an expiry, a refusal
 * (limits, bad work dir) and a crash are all failures.
 */
export function isFailure(status: TaskStatus): boolean {
  return !(status.state === TaskState.Finished && status.exitStatus === 0 && status.errorCode === ErrorCode.None);
}

/** A running minimum, maximum and sum. */
class Accumulator {
  private count = 0;
  private sum = 0;
  private min = 0;
  private max = 0;

  add(value: number): void {
    if (!Number.isFinite(value)) return;
    this.min = this.count === 0 ? value : Math.min(this.min, value);
    this.max = this.count === 0 ? value : Math.max(this.max, value);
    this.sum += value;
    this.count++;
  }

  figure(): StatFigure {
    return { min: this.min, avg: this.count === 0 ? 0 : this.sum / this.count, max: this.max, count: this.count };
  }
}

const minuteMs = 60_000;

/**
 * Tasks per minute in constant memory. Minutes are counted from the node's start
 * (minute 0 is its first 60 s). The minimum is taken over completed minutes only, since
 * the current one may still grow (while no minute has completed, it is the current
 * minute's count); the maximum includes the current minute; the average is the total
 * over the minutes elapsed, at least one, so a burst in the first seconds does not read
 * as thousands per minute.
 */
class PerMinute {
  private current = 0;
  private currentCount = 0;
  private completed = 0;
  private completedMin = 0;
  private completedMax = 0;
  private total = 0;

  constructor(private readonly startedAt: number) {}

  /** Counts one task at time `at`. */
  add(at: number): void {
    this.roll(at);
    this.currentCount++;
    this.total++;
  }

  figure(now: number): StatFigure {
    this.roll(now);
    const elapsedMinutes = Math.max(1, (now - this.startedAt) / minuteMs);
    const min = this.completed === 0 ? this.currentCount : this.completedMin;
    const max = Math.max(this.completedMax, this.currentCount);
    return { min, avg: this.total / elapsedMinutes, max, count: this.completed + 1 };
  }

  /** Closes the minutes before the one `at` falls in; the skipped ones held no task. */
  private roll(at: number): void {
    const minute = Math.max(0, Math.floor((at - this.startedAt) / minuteMs));
    if (minute <= this.current) return;
    this.close(this.currentCount);
    const skipped = minute - this.current - 1;
    if (skipped > 0) {
      this.completedMin = 0;
      this.completed += skipped;
    }
    this.current = minute;
    this.currentCount = 0;
  }

  private close(count: number): void {
    this.completedMin = this.completed === 0 ? count : Math.min(this.completedMin, count);
    this.completedMax = this.completed === 0 ? count : Math.max(this.completedMax, count);
    this.completed++;
  }
}

/** The counters of one mode. */
class ModeCounters {
  tasks = 0;
  failed = 0;
  readonly timeMs = new Accumulator();
  readonly inputBytes = new Accumulator();
  readonly outputBytes = new Accumulator();
  readonly cpuPercent = new Accumulator();
  readonly memoryBytes = new Accumulator();
  readonly perMinute: PerMinute;

  constructor(startedAt: number) {
    this.perMinute = new PerMinute(startedAt);
  }

  snapshot(now: number): ModeStats {
    return {
      tasks: this.tasks,
      failed: this.failed,
      timeMs: this.timeMs.figure(),
      inputBytes: this.inputBytes.figure(),
      outputBytes: this.outputBytes.figure(),
      cpuPercent: this.cpuPercent.figure(),
      memoryBytes: this.memoryBytes.figure(),
      perMinute: this.perMinute.figure(now),
    };
  }
}

/** Options of {@link createNodeStats}. */
export interface NodeStatsOptions {
  /** When counting begins, Unix ms; now unless given. */
  readonly startedAt?: number;
  /** The clock; Date.now unless a test gives another. */
  readonly now?: () => number;
}

/** The node's task statistics, fed with every task event. */
export interface NodeStats {
  /** Takes a task event into account; call it with every event the core publishes. */
  record(event: TaskEvent): void;
  /** The statistics now. */
  snapshot(): NodeStatsSnapshot;
  /** Starts counting again from now (legacy RESET_STAT_COUNTERS); unfinished tasks are still counted when they end. */
  reset(): void;
}

/**
 * Creates the node's task statistics (legacy NODE_MSG_PROPERTIES), fed from task events.
 * A task is counted once, when it reaches its first final state, and only if this
 * process saw it before that (as new or queued): tasks recovered as crashed at start-up
 * ran under an earlier process and are left out, and the "deleted" event that may follow
 * a final state is not a second count. Memory is constant but for the ids of unfinished
 * tasks.
 */
export function createNodeStats(options: NodeStatsOptions = {}): NodeStats {
  const now = options.now ?? Date.now;
  let startedAt = options.startedAt ?? now();
  let modes = { sync: new ModeCounters(startedAt), async: new ModeCounters(startedAt) };
  const unfinished = new Set<string>();

  return {
    record(event) {
      const status = event.status;
      if (!isFinalState(status.state)) {
        if (status.state !== TaskState.Deleted) unfinished.add(status.id);
        return;
      }
      if (!unfinished.delete(status.id)) return;
      const counters = status.mode === TaskMode.Async ? modes.async : modes.sync;
      counters.tasks++;
      if (isFailure(status)) counters.failed++;
      counters.perMinute.add(event.at);
      if (status.startedAt === 0) return;
      counters.timeMs.add(event.timeMs);
      counters.inputBytes.add(status.inputSize ?? 0);
      counters.outputBytes.add(status.stdoutSize);
      const cpu = status.usage["TASK_CPU"];
      const rram = status.usage["TASK_RRAM"];
      if (cpu !== undefined) counters.cpuPercent.add(cpu);
      if (rram !== undefined) counters.memoryBytes.add(rram);
    },
    snapshot() {
      const at = now();
      return { startedAt, computedAt: at, sync: modes.sync.snapshot(at), async: modes.async.snapshot(at) };
    },
    reset() {
      startedAt = now();
      modes = { sync: new ModeCounters(startedAt), async: new ModeCounters(startedAt) };
    },
  };
}
