import { ErrorCode } from "../domain/errors.js";
import { TaskState } from "../domain/states.js";
import type { TaskStatus } from "../domain/task.js";
import { signalGroup } from "../executor/local-runner.js";
import { readProcStartTicks } from "../executor/process-usage.js";
import type { TaskStore } from "../store/task-store.js";
import { mergeCrashedTail } from "../store/tail-ring.js";
import type { StreamName } from "../domain/task.js";

/**
 * Recovers a task that was not final when the node died: a live orphan (same pid and the
 * same start time in /proc, which guards against pid reuse) has its group killed, and the
 * task is reported as crashed (state 5) with the output it had written. A stream that had
 * passed its cap has its tail ring merged after its head, as a finished task's would be,
 * with the true size and the truncation in the status; the caller removes the rings once
 * that status is durable (see {@link removeTail}).
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
  const output = async (stream: StreamName): Promise<{ size: number; truncated: boolean }> => {
    let merged;
    try {
      merged = mergeCrashedTail(store.outputPath(status.id, stream));
    } catch {
      // A ring that cannot be read back (the head file gone, an I/O error) leaves the head alone.
      merged = undefined;
    }
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
