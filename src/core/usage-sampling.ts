import { ErrorCode } from "../domain/errors.js";
import { TaskState } from "../domain/states.js";
import type { ExecHandle, TaskUsage } from "../executor/runner.js";
import { hasRunLimits, needsDiskUsage } from "../executor/limits.js";
import type { CoreContext } from "./core-context.js";
import type { TaskRecord } from "./task-registry.js";
import { expiryTerminate } from "./terminate-policies.js";

/** Keeps a usage sample of a live task: the current figures in its run, the peaks in its status. */
export function recordUsage(record: TaskRecord, usage: TaskUsage): void {
  if (!record.run.live) return;
  record.run.noteUsage(usage);
  const peak = record.status.usage;
  record.status = {
    ...record.status,
    usage: {
      TASK_CPU: Math.max(peak["TASK_CPU"] ?? 0, usage.cpuPercent),
      TASK_VRAM: Math.max(peak["TASK_VRAM"] ?? 0, usage.vramBytes),
      TASK_RRAM: Math.max(peak["TASK_RRAM"] ?? 0, usage.rramBytes),
      TASK_THREADS: Math.max(peak["TASK_THREADS"] ?? 0, usage.threads),
    },
  };
}

/**
 * Samples a running task's usage every sample interval and stops it (error 119) once a
 * sample passes one of its *_usage_max limits. Returns the function that stops sampling.
 */
export function startSampling(context: CoreContext, record: TaskRecord, handle: ExecHandle, workDir: string): () => void {
  const { run, spec } = record;
  const hooks = context.options.resources;
  const sample = async (): Promise<void> => {
    const usage = await handle.sampleUsage?.().catch(() => undefined); // a failed sample is skipped; the next one comes an interval later
    if (usage === undefined || !run.live) return;
    recordUsage(record, usage);
    if (hooks?.checkRun === undefined || !hasRunLimits(spec.limits) || run.stopReason !== undefined) return;
    // A walk of the work dir on every sample is paid only by tasks with a disk limit.
    const diskBytes = needsDiskUsage(spec.limits) ? ((await hooks.directoryBytes?.(workDir).catch(() => 0)) ?? 0) : 0; // an unreadable work dir counts as empty until a walk succeeds
    const refusal = hooks.checkRun(spec, { ...usage, diskBytes });
    // Once stopping, later samples leave the termination under way alone (the first reason wins).
    if (refusal !== undefined) {
      await run.stop({ state: TaskState.Terminated, errorCode: ErrorCode.ResourceLimits, message: refusal.message }, expiryTerminate);
    }
  };
  const timer = setInterval(() => {
    sample().catch((error: unknown) => context.reportInternal(record.status.id, error));
  }, context.options.sampleIntervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
