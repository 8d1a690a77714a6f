import { ErrorCode } from "../domain/errors.js";
import { TaskState } from "../domain/states.js";
import type { TaskStatus } from "../domain/task.js";
import { signalGroup } from "../executor/local-runner.js";
import { readProcStartTicks } from "../executor/process-usage.js";
import type { TaskStore } from "../store/task-store.js";

/**
 * Recovers a task that was not final when the node died: a live orphan (same pid and the
 * same start time in /proc, which guards against pid reuse) has its group killed, and the
 * task is reported as crashed (state 5) with the output it had written.
 */
export async function recoverTask(status: TaskStatus, store: TaskStore): Promise<TaskStatus> {
  let message = "the node stopped before the task started";
  if (status.pid > 0) {
    message = "the node stopped while the task was running";
    const ticks = await readProcStartTicks(status.pid);
    if (status.procStartTicks > 0 && ticks === status.procStartTicks) {
      signalGroup(status.pgid || status.pid, "SIGKILL");
      message += "; its processes were killed";
    }
  }
  const [stdoutSize, stderrSize] = await Promise.all([store.outputSize(status.id, "stdout"), store.outputSize(status.id, "stderr")]);
  return {
    ...status,
    state: TaskState.Crashed,
    errorCode: ErrorCode.ExecuteTask,
    errorMessage: message,
    stdoutSize,
    stderrSize,
    finishedAt: status.finishedAt || Date.now(),
  };
}
