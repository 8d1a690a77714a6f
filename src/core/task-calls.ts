import { DrceError, ErrorCode } from "../domain/errors.js";
import { isFinalState, TaskState } from "../domain/states.js";
import type { TerminateOptions } from "../domain/task.js";
import { releaseView, type OutputMode, type TaskView } from "../domain/view.js";
import type { ExecHandle } from "../executor/runner.js";
import { timeOf, type CoreContext } from "./core-context.js";
import { parentTerminated, stopTree } from "./subtask-tree.js";
import type { TaskRemoval } from "./task-removal.js";
import { viewOf } from "./task-views.js";

/** What a caller terminated task ends with: terminated, no error. */
const terminatedByCaller = Object.freeze({ state: TaskState.Terminated, errorCode: ErrorCode.None, message: "" });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The calls on one task by id or alias: check, terminate, fetch, remove, and its stdin. */
export interface TaskCalls {
  check(ref: string, extended: boolean, output?: OutputMode): Promise<TaskView>;
  terminate(ref: string, request: TerminateOptions): Promise<TaskView>;
  fetch(ref: string, remove: boolean, output?: OutputMode): Promise<TaskView>;
  remove(ref: string): Promise<TaskView>;
  writeInput(ref: string, data: Uint8Array): Promise<void>;
  endInput(ref: string): Promise<void>;
}

/** Creates the calls on one task over the core's context and its removal concern. */
export function createTaskCalls(context: CoreContext, removal: TaskRemoval): TaskCalls {
  const { registry } = context;

  /** The running command of an open_stdin task, once it has started. */
  const liveHandle = async (ref: string): Promise<ExecHandle> => {
    const record = registry.resolve(ref);
    if (!record.spec.openStdin) throw new DrceError("precondition", `task ${record.status.id} was not submitted with open stdin`);
    await record.run.started;
    const handle = record.run.handle;
    if (handle === undefined) throw new DrceError("precondition", `task ${record.status.id} is not running`);
    return handle;
  };

  return {
    async check(ref, extended, output) {
      // An extended check is "complete status file data": output and files too (protocol example 2).
      const record = registry.resolve(ref);
      const release = context.hold(record);
      try {
        return await viewOf(context, record, extended ? (output ?? "inline") : "none", extended);
      } finally {
        release();
      }
    },
    async terminate(ref, request) {
      const record = registry.resolve(ref);
      if (isFinalState(record.status.state) || !record.run.live) {
        throw new DrceError("precondition", `task ${record.status.id} is not running (state ${record.status.state})`, { legacyCode: ErrorCode.Terminate });
      }
      await stopTree(context, record, terminatedByCaller, parentTerminated, request);
      // The terminate algorithm has run; the task turns final once its output is flushed.
      await Promise.race([record.run.done, sleep(Math.max(2000, request.delayMs * (request.repeat + 1)))]);
      const view = await viewOf(context, record, "none", false);
      if (request.cleanup && registry.treeFinal(record)) await removal.removeTree(record);
      return view;
    },
    async fetch(ref, remove, output = "inline") {
      const record = registry.resolve(ref);
      // Its files are read across several awaits; the retention sweep waits for them.
      const release = context.hold(record);
      try {
        const view = await viewOf(context, record, output, false);
        if (!registry.treeFinal(record)) {
          return { ...view, status: { ...view.status, errorCode: ErrorCode.GetDataStillRunning, errorMessage: "the task is still running" } };
        }
        try {
          // Kept output opened for the caller stays readable after the removal (the files are open).
          if (remove || record.spec.cleanup) await removal.removeTree(record);
        } catch (error) {
          await releaseView(view);
          throw error;
        }
        return view;
      } finally {
        release();
      }
    },
    async remove(ref) {
      const record = registry.resolve(ref);
      if (!registry.treeFinal(record)) {
        throw new DrceError("precondition", `task ${record.status.id} is still running; terminate it first`, { legacyCode: ErrorCode.DeleteData });
      }
      await removal.removeTree(record);
      return { status: { ...record.status, state: TaskState.Deleted }, timeMs: timeOf(record.status), subtasks: [] };
    },
    async writeInput(ref, data) {
      await (await liveHandle(ref)).writeInput(data);
    },
    async endInput(ref) {
      (await liveHandle(ref)).endInput();
    },
  };
}
