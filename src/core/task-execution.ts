import { finished } from "node:stream/promises";
import { DrceError, ErrorCode } from "../domain/errors.js";
import { isFinalState, TaskState } from "../domain/states.js";
import { FileAction, type TaskStatus } from "../domain/task.js";
import type { ExecOutcome, SessionRunner, TaskPlace } from "../executor/runner.js";
import type { CoreContext } from "./core-context.js";
import { createDeadline } from "./deadline.js";
import { sessionRunnerFor } from "./session-table.js";
import { cancelSubtasks, parentDidNotRun, parentStopped, parentTimeMaxPassed, refuse, runSubtasks, stopTree, subtreeDeadline } from "./subtask-tree.js";
import type { TaskRecord } from "./task-registry.js";
import type { Spools, StopReason } from "./task-run.js";
import { streamNames } from "./task-views.js";
import { expiryTerminate } from "./terminate-policies.js";
import { recordUsage, startSampling } from "./usage-sampling.js";

/** Why a task's own time limit (timeout, time_max, the node's ceiling) ended it (legacy 116). */
const timeLimitPassed: StopReason = Object.freeze({ state: TaskState.Expired, errorCode: ErrorCode.TerminatedExpired, message: "time limit passed; the task was terminated" });

/**
 * Starts a task under its tree's deadline (absolute ms; infinite for a root): when the
 * deadline of a parent's time_max passes, the task and what runs below it are stopped with
 * error 117. Resolves when the task is final.
 */
export function launchTask(context: CoreContext, record: TaskRecord, treeDeadlineAt: number): Promise<void> {
  const { run } = record;
  run.setState({ kind: "waiting" });
  run.deadline(treeDeadlineAt - Date.now(), () => stopTree(context, record, parentTimeMaxPassed, parentTimeMaxPassed, expiryTerminate));
  return runTask(context, record, treeDeadlineAt).finally(() => run.setState({ kind: "done" }));
}

/**
 * Runs one task: waits for a slot (a ttl ends the wait), runs its command, then its
 * subtasks. Never rejects: a failure ends the task with its code.
 */
async function runTask(context: CoreContext, record: TaskRecord, treeDeadlineAt: number): Promise<void> {
  const { spec, run } = record;
  const { slots } = context;
  let slotHeld = false;
  const releaseSlot = (): void => {
    if (!slotHeld) return;
    slotHeld = false;
    slots.release();
  };
  try {
    if (!slots.free) await context.update(record, { state: TaskState.Queued });
    // A terminate that came while the queued status was written has already aborted the signal.
    const ttl = createDeadline(spec.ttlMs > 0 ? spec.ttlMs : Number.POSITIVE_INFINITY, run.signal);
    slotHeld = await slots.acquire(ttl.signal);
    ttl.clear();
    if (!slotHeld) {
      await refuse(context, record, run.stopReason ?? { state: TaskState.NotSet, errorCode: ErrorCode.CreateTask, message: `ttl of ${spec.ttlMs} ms passed while the task was queued` });
      await cancelSubtasks(context, record, run.stopReason ?? parentDidNotRun);
      return;
    }
    if (run.stopReason !== undefined) {
      await refuse(context, record, run.stopReason);
      await cancelSubtasks(context, record, run.stopReason);
      return;
    }
    run.setState({ kind: "starting" });
    await runCommand(context, record, treeDeadlineAt, releaseSlot);
  } catch (error) {
    if (!(error instanceof DrceError)) context.reportInternal(record.status.id, error);
    const reason: StopReason =
      error instanceof DrceError
        ? { state: TaskState.NotSet, errorCode: error.legacyCode, message: error.message }
        : { state: TaskState.NotSet, errorCode: ErrorCode.ExecuteTask, message: "internal error while running the task" };
    if (!isFinalState(record.status.state)) {
      await refuse(context, record, reason).catch((stored: unknown) => context.reportInternal(record.status.id, stored)); // the refusal stays in memory; recovery reports the task crashed
    } else if (error instanceof DrceError && error.kind === "unavailable") {
      // The final state is known but could not be stored, the reserve spent: it is reported
      // and published all the same, so that watchers see the end.
      context.reportInternal(record.status.id, error);
      context.publish(record.status);
    }
    await cancelSubtasks(context, record, parentDidNotRun).catch((stored: unknown) => context.reportInternal(record.status.id, stored));
  } finally {
    releaseSlot();
  }
}

/** Applies the before-command file actions (delete, create) of a task's request. */
async function filesBefore(session: SessionRunner, record: TaskRecord, workDir: string): Promise<void> {
  const files = session.filesFor(record.spec);
  for (const file of record.spec.files) {
    const at = session.fileLocation(record.spec, workDir, file.name);
    if (file.action & FileAction.DeleteBefore) await files.remove(at.dir, at.name);
    if (file.action & FileAction.CreateBefore) await files.write(at.dir, at.name, file.data);
  }
}

/**
 * Applies the after-command file actions (read back, delete); returns the files kept, in
 * order, and the first failure (legacy 203 or 204) with the others done all the same.
 */
async function filesAfter(context: CoreContext, session: SessionRunner, record: TaskRecord, workDir: string): Promise<{ kept: { name: string; action: number }[]; error: DrceError | undefined }> {
  const { spec } = record;
  const files = session.filesFor(spec);
  let fileError: DrceError | undefined;
  const kept: { name: string; action: number }[] = [];
  for (const file of spec.files) {
    try {
      const at = session.fileLocation(spec, workDir, file.name);
      if (file.action & FileAction.ReadAfter) {
        const data = await files.read(at.dir, at.name, context.options.maxFileBytes);
        await context.store.writeResultFile(spec.id, kept.length, data);
        kept.push({ name: file.name, action: file.action >>> 0 });
      }
      if (file.action & FileAction.DeleteAfter) await files.remove(at.dir, at.name);
    } catch (error) {
      const code = file.action & FileAction.ReadAfter ? ErrorCode.FileRead : ErrorCode.FileDeleteAfter;
      fileError ??= new DrceError("invalid", error instanceof DrceError ? error.message : `file ${file.name}: failed`, { legacyCode: code });
    }
  }
  return { kept, error: fileError };
}

/** Ends the spools once the command is over and waits until what they hold is on disk. */
async function finishSpools(spools: Spools): Promise<void> {
  await Promise.all(
    streamNames.map(async (stream) => {
      const spool = spools[stream];
      if (!spool.writableEnded) spool.end();
      await finished(spool).catch(() => undefined); // a spool that failed says so in its storageError, read below
      await spool.finish();
    }),
  );
}

/** The final status fields of a task whose command ended with `outcome`. */
function finalFields(record: TaskRecord, spools: Spools, outcome: ExecOutcome, kept: { name: string; action: number }[], fileError: DrceError | undefined): Partial<TaskStatus> {
  const stop = record.run.stopReason;
  // A disk that filled up (or failed) under the output: the result says so.
  const lost = streamNames.find((stream) => spools[stream].storageError !== undefined);
  if (lost !== undefined) {
    fileError ??= new DrceError("unavailable", `storage error while writing ${lost} (${spools[lost].storageError}); the output is incomplete`, { legacyCode: ErrorCode.InternalFo });
  }
  const base: Partial<TaskStatus> = {
    stdoutSize: spools.stdout.total,
    stderrSize: spools.stderr.total,
    stdoutTruncated: spools.stdout.truncated,
    stderrTruncated: spools.stderr.truncated,
    files: kept,
    usage: record.status.usage,
  };
  if (outcome.kind === "failed") return { ...base, state: TaskState.NotSet, errorCode: outcome.errorCode, errorMessage: outcome.message };
  return {
    ...base,
    state: stop?.state ?? TaskState.Finished,
    errorCode: stop?.errorCode ?? fileError?.legacyCode ?? ErrorCode.None,
    errorMessage: stop?.message ?? fileError?.message ?? "",
    exitStatus: outcome.exitStatus,
    signal: outcome.signal,
    escapedPids: outcome.escapedPids,
  };
}

/** Prepares the work dir and files, runs the command, reads files back, runs the subtasks, writes the final status. */
async function runCommand(context: CoreContext, record: TaskRecord, treeDeadlineAt: number, releaseSlot: () => void): Promise<void> {
  const { spec, run } = record;
  const { store, options } = context;
  const session = sessionRunnerFor(context.sessions, spec);
  const place: TaskPlace = { ownWorkDir: store.workDir(spec.id), parents: store.workDirParents(spec.id) };
  const workDir = await session.prepareWorkDir(spec, place);

  const refusal = options.resources?.checkStart?.(spec, workDir);
  if (refusal !== undefined) throw new DrceError("exhausted", refusal.message, { legacyCode: ErrorCode.ResourceLimits });
  await filesBefore(session, record, workDir);

  const spools: Spools = { stdout: store.createSpool(spec.id, "stdout", options.maxOutputBytes), stderr: store.createSpool(spec.id, "stderr", options.maxOutputBytes) };
  run.useSpools(spools);
  const handle = await session.start(
    {
      spec,
      runAs: session.userFor(spec),
      workDir,
      stdout: spools.stdout,
      stderr: spools.stderr,
      onSpawn: async (info) => {
        // The first sample, taken at the spawn, is in place before the task shows as running.
        if (info.usage !== undefined) recordUsage(record, info.usage);
        await context.update(record, { state: TaskState.InProgress, pid: info.pid, pgid: info.pgid, procStartTicks: info.procStartTicks, startedAt: Date.now() }, "spawned");
      },
    },
    place,
  );
  run.setState({ kind: "running", handle });

  // Time limits: the task's own (timeout, time_max, the node's ceiling); its tree's is armed at its launch.
  const startedAt = record.status.startedAt || Date.now();
  const limits = [spec.timeoutSeconds * 1000, spec.timeMaxMs, options.maxTaskMs].filter((v) => v > 0);
  const ownDeadline = limits.length > 0 ? startedAt + Math.min(...limits) : Number.POSITIVE_INFINITY;
  const clearOwnDeadline = run.deadline(ownDeadline - Date.now(), () => run.stop(timeLimitPassed, expiryTerminate));
  const stopSampling = startSampling(context, record, handle, workDir);
  let outcome: ExecOutcome;
  try {
    outcome = await handle.done;
  } finally {
    // The command's own limits end with it: sync subtasks that run next are bound by the tree's.
    clearOwnDeadline();
    stopSampling();
  }
  await finishSpools(spools);
  run.setState({ kind: "settling" });
  const after = await filesAfter(context, session, record, workDir);
  const finalStatus = finalFields(record, spools, outcome, after.kept, after.error);
  // A parent waiting for its subtasks runs nothing: it gives its slot up, or with every slot
  // held by such parents (max-concurrent 1 and one sync subtask) no subtask could ever start.
  releaseSlot();
  // The task stays "in progress" until its sync subtasks are done; its own figures are kept now.
  record.status = { ...record.status, ...finalStatus, state: record.status.state };

  // A parent that was stopped, or whose command failed, runs none of its subtasks.
  if (run.stopReason !== undefined || outcome.kind === "failed") await cancelSubtasks(context, record, parentStopped);
  else await runSubtasks(context, record, subtreeDeadline(spec.timeMaxMs, treeDeadlineAt, startedAt), (sub, at) => launchTask(context, sub, at));
  await context.update(record, { ...finalStatus, usage: record.status.usage, finishedAt: Date.now() }, "final");
}
