import type { FileResult, TaskStatus } from "./task.js";

/**
 * What the core answers about a task: its status, the time it ran, and, depending on
 * the call, its output, files, usage figures and subtasks. Transports turn it into a
 * Connect `TaskResult` or a legacy result item.
 */
export interface TaskView {
  readonly status: TaskStatus;
  /** Milliseconds run: total if final, so far if running, zero before start. */
  readonly timeMs: number;
  /** stdout bytes, on fetch. */
  readonly stdout?: Uint8Array;
  /** stderr bytes, on fetch. */
  readonly stderr?: Uint8Array;
  /** Files read back, on fetch and sync submit. */
  readonly files?: readonly FileResult[];
  /** TASK_* and HOST_* figures, on an extended check. */
  readonly fields?: Readonly<Record<string, number>>;
  /** Views of the subtasks, in request order. */
  readonly subtasks: readonly TaskView[];
}
