import type { OutputMode, TaskView } from "../domain/view.js";
import { timeOf, type CoreContext } from "./core-context.js";
import type { TaskRecord } from "./task-registry.js";

/** The streams of a task, in the order views and streams give them. */
export const streamNames = ["stdout", "stderr"] as const;

/**
 * A task's view with its subtasks': its status and time, its output as `output` says
 * ("none", "inline" up to the node's inline bound, or "whole" as open files), its returned
 * files, and with `extended` its usage and host figures.
 */
export async function viewOf(context: CoreContext, record: TaskRecord, output: OutputMode, extended: boolean): Promise<TaskView> {
  const { store } = context;
  const status = record.status;
  const subtasks = await Promise.all(context.registry.subtasksOf(record).map((sub) => viewOf(context, sub, output, extended)));
  const view: { -readonly [K in keyof TaskView]: TaskView[K] } = { status, timeMs: timeOf(status), subtasks };
  if (output !== "none") {
    const live = record.run.spools;
    for (const stream of streamNames) {
      // A running task's spool may be past its head; what is readable in the file is what we have.
      const available = live?.[stream].available;
      let keptSize: number;
      if (output === "whole") {
        const kept = await store.openOutput(status.id, stream, available);
        view[stream === "stdout" ? "stdoutFile" : "stderrFile"] = kept;
        keptSize = kept.size;
      } else {
        const { data, size } = await store.readOutputHead(status.id, stream, context.inlineBytes);
        keptSize = available === undefined ? size : Math.min(size, available);
        view[stream] = data.subarray(0, Math.min(data.length, keptSize));
        view[stream === "stdout" ? "stdoutMore" : "stderrMore"] = keptSize > view[stream].length;
      }
      // A truncated stream's kept copy is exactly the cap: its head is the first half, rounded up.
      const total = stream === "stdout" ? status.stdoutSize : status.stderrSize;
      const truncated = stream === "stdout" ? status.stdoutTruncated : status.stderrTruncated;
      if (truncated && total > keptSize && (live === undefined || live[stream].complete)) {
        view[stream === "stdout" ? "stdoutGap" : "stderrGap"] = { offset: Math.ceil(keptSize / 2), bytes: total - keptSize };
      }
    }
    view.files = await store.readResultFiles(status);
  }
  if (extended) view.fields = fieldsOf(context, record);
  return view;
}

/** The TASK_* figures of a task (the latest sample while it runs, else its peaks) and the node's HOST_* figures. */
function fieldsOf(context: CoreContext, record: TaskRecord): Record<string, number> {
  const usage = record.run.usage;
  const peak = record.status.usage;
  return {
    TASK_CPU: usage?.cpuPercent ?? peak["TASK_CPU"] ?? 0,
    TASK_VRAM: usage?.vramBytes ?? peak["TASK_VRAM"] ?? 0,
    TASK_RRAM: usage?.rramBytes ?? peak["TASK_RRAM"] ?? 0,
    TASK_THREADS: usage?.threads ?? peak["TASK_THREADS"] ?? 0,
    HOST_CPU: 0,
    HOST_IOWAIT: 0,
    HOST_VRAM: 0,
    HOST_RRAM: 0,
    HOST_DISK: 0,
    HOST_PROCESSES: 0,
    HOST_THREADS: 0,
    ...context.options.resources?.hostFields?.(),
  };
}
