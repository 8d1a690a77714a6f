import { ErrorCode } from "../domain/errors.js";
import { isFinalState, TaskMode, TaskState } from "../domain/states.js";
import type { TerminateOptions } from "../domain/task.js";
import type { CoreContext } from "./core-context.js";
import type { TaskRecord } from "./task-registry.js";
import type { StopReason } from "./task-run.js";

/** Why subtasks that never started end: their parent did not run its command. */
export const parentDidNotRun: StopReason = Object.freeze({ state: TaskState.Terminated, errorCode: ErrorCode.Canceled, message: "parent task did not run" });

/** Why subtasks that never started end: their parent was stopped (terminated, expired, failed). */
export const parentStopped: StopReason = Object.freeze({ state: TaskState.Terminated, errorCode: ErrorCode.Canceled, message: "parent task was stopped" });

/** Why subtasks end when their parent was terminated by a caller. */
export const parentTerminated: StopReason = Object.freeze({ state: TaskState.Terminated, errorCode: ErrorCode.Canceled, message: "parent task was terminated" });

/** Why a subtask ends when its parent's time_max passed while it ran (legacy 117). */
export const parentTimeMaxPassed: StopReason = Object.freeze({
  state: TaskState.Expired,
  errorCode: ErrorCode.TerminatedSubtaskExpired,
  message: "parent task's time_max passed; the subtask was terminated",
});

/** Marks a task that never started as final with a reason. */
export async function refuse(context: CoreContext, record: TaskRecord, reason: StopReason): Promise<void> {
  await context.update(record, { state: reason.state, errorCode: reason.errorCode, errorMessage: reason.message, finishedAt: Date.now() }, "final");
}

/**
 * Stops a task and every live task below it: the task for `reason`, its subtasks for
 * `subReason` (each keeps the first reason it was given), by `policy`.
 */
export async function stopTree(context: CoreContext, record: TaskRecord, reason: StopReason, subReason: StopReason, policy: TerminateOptions): Promise<void> {
  const jobs: Promise<void>[] = [record.run.stop(reason, policy)];
  for (const sub of context.registry.subtasksOf(record)) {
    if (!isFinalState(sub.status.state)) jobs.push(stopTree(context, sub, subReason, subReason, policy));
  }
  await Promise.all(jobs);
}

/**
 * Marks the subtasks below a task that will never start as final for `reason`; a subtask
 * already handed to the scheduler runs on (or is stopped by {@link stopTree}).
 */
export async function cancelSubtasks(context: CoreContext, record: TaskRecord, reason: StopReason): Promise<void> {
  for (const sub of context.registry.subtasksOf(record)) {
    if (sub.run.state.kind !== "pending" || isFinalState(sub.status.state)) continue;
    context.slots.unreserve(1); // it will never ask for a slot
    await refuse(context, sub, reason);
    await cancelSubtasks(context, sub, reason);
    sub.run.setState({ kind: "done" });
  }
}

/** Starts a subtask under a tree deadline (absolute ms); resolves when it is final. */
export type LaunchTask = (record: TaskRecord, treeDeadlineAt: number) => Promise<void>;

/**
 * Runs a task's subtasks in order, once its own command ended well: a sync one finishes
 * before the next starts, an async one is started and the next goes on. A parent stopped
 * meanwhile runs no more of them: the rest are cancelled.
 */
export async function runSubtasks(context: CoreContext, record: TaskRecord, treeDeadlineAt: number, launch: LaunchTask): Promise<void> {
  for (const sub of context.registry.subtasksOf(record)) {
    if (record.run.stopReason !== undefined) {
      await cancelSubtasks(context, record, parentStopped);
      return;
    }
    const running = launch(sub, treeDeadlineAt);
    if (sub.spec.mode === TaskMode.Sync) await running;
  }
}

/** The deadline a task's subtasks run under: its tree's, or its own time_max from its start when sooner. */
export function subtreeDeadline(timeMaxMs: number, treeDeadlineAt: number, startedAt: number): number {
  return Math.min(treeDeadlineAt, timeMaxMs > 0 ? startedAt + timeMaxMs : Number.POSITIVE_INFINITY);
}
