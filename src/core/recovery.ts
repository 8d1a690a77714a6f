import { ErrorCode } from "../domain/errors.js";
import { TaskState } from "../domain/states.js";
import type { StreamName, TaskStatus } from "../domain/task.js";
import type { ReapResult } from "../executor/runner.js";
import type { TaskStore } from "../store/task-store.js";

/**
 * Recovers a task that was not final when the node died: `reap` kills what its session
 * runner can tell is still the task's (a local orphan with the same pid and start time), and
 * the task is reported as crashed (state 5) with the output it had written. A stream that
 * had passed its cap has its tail ring merged after its head, as a finished task's would be,
 * with the true size and the truncation in the status; the caller removes the rings once
 * that status is durable (see {@link TaskStore.removeOutputTail}).
 */
export async function recoverTask(status: TaskStatus, store: TaskStore, reap: (status: TaskStatus) => Promise<ReapResult>): Promise<TaskStatus> {
  let message = "the node stopped before the task started";
  if (status.pid > 0) {
    message = "the node stopped while the task was running";
    if ((await reap(status)).killed) message += "; its processes were killed";
  }
  const output = async (stream: StreamName): Promise<{ size: number; truncated: boolean }> => {
    const merged = store.mergeCrashedOutput(status.id, stream);
    if (merged === undefined) return { size: await store.outputSize(status.id, stream), truncated: false };
    return { size: merged.total, truncated: merged.total > merged.kept };
  };
  const [stdout, stderr] = [await output("stdout"), await output("stderr")];
  return {
    ...status,
    stdoutTruncated: stdout.truncated,
    stderrTruncated: stderr.truncated,
    state: TaskState.Crashed,
    errorCode: ErrorCode.ExecuteTask,
    errorMessage: message,
    stdoutSize: stdout.size,
    stderrSize: stderr.size,
    finishedAt: status.finishedAt || Date.now(),
  };
}
