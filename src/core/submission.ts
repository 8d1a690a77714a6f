import { DrceError, ErrorCode } from "../domain/errors.js";
import { storedSpecDigest, toStoredSpec } from "../domain/spec-json.js";
import { isFinalState, TaskMode, TaskState } from "../domain/states.js";
import { taskStatus, type TaskSpec } from "../domain/task.js";
import { validateSpec } from "../domain/validate.js";
import type { OutputMode, TaskView } from "../domain/view.js";
import type { SubmitOutcome } from "./api.js";
import type { CoreContext } from "./core-context.js";
import { sessionRunnerFor } from "./session-table.js";
import type { TaskRecord } from "./task-registry.js";
import { TaskRun } from "./task-run.js";
import { viewOf } from "./task-views.js";

/** What a submission needs besides the core's context: how to start a tree and deliver a cleanup task's result. */
export interface SubmissionParts {
  /** True once the node is shutting down: new tasks are refused. */
  readonly closing: () => boolean;
  /** Starts a root task (its tree deadline is none); resolves when it is final. */
  readonly launch: (record: TaskRecord) => Promise<void>;
  /** Applies a cleanup task's `cleanup` once its result was delivered in `view`. */
  readonly cleanupDelivered: (record: TaskRecord, view: TaskView) => Promise<void>;
  /** Called once a new tree is stored: the node may now hold more tasks than its retention bound. */
  readonly accepted: () => void;
}

/** The command summary shown in lists. */
function commandSummary(spec: TaskSpec): string {
  const text = spec.command !== "" ? spec.command : spec.argv.join(" ");
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

/** A task of a submitted tree with its parent's id. */
interface TreeTask {
  readonly spec: TaskSpec;
  readonly parentId: string;
}

/** The tasks of a tree, parents before their subtasks, in request order. */
function flatten(spec: TaskSpec, parentId: string, out: TreeTask[] = []): TreeTask[] {
  out.push({ spec, parentId });
  for (const sub of spec.subtasks) flatten(sub, spec.id, out);
  return out;
}

/** Resolves once the task is final; rejects (unavailable) when the caller's signal aborts first. */
export async function waitDone(record: TaskRecord, signal?: AbortSignal): Promise<void> {
  if (signal === undefined) return record.run.done;
  if (signal.aborted) throw new DrceError("unavailable", "the call was cancelled");
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(new DrceError("unavailable", "the call was cancelled"));
    signal.addEventListener("abort", onAbort, { once: true });
    void record.run.done.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}

/**
 * Submits a task tree: checks it, gives ids to tasks that have none, answers a resubmission
 * of the same request with the task it made (idempotency) and refuses a different one with
 * the same id (AlreadyExists, legacy 104), stores every task durably before any runs, then
 * starts the root; a sync submission waits for the tree and answers with its result.
 * `attached` marks the root's caller as one that reads every byte (RunTask).
 */
export async function submitTree(context: CoreContext, parts: SubmissionParts, input: TaskSpec, signal: AbortSignal | undefined, output: OutputMode, attached: boolean): Promise<SubmitOutcome> {
  // Acceptance comes first: queued tasks wait for a free slot until this submission is
  // answered or refused (or the slots' bound passes), so that a node with a long queue still
  // answers submissions at once. The acceptance ends before a sync submission waits for its run.
  const endAcceptance = context.slots.beginAcceptance();
  try {
    return await acceptTree(context, parts, input, signal, output, attached, endAcceptance);
  } finally {
    endAcceptance();
  }
}

/** {@link submitTree} once its acceptance is counted; calls `endAcceptance` as soon as the tree is accepted. */
async function acceptTree(context: CoreContext, parts: SubmissionParts, input: TaskSpec, signal: AbortSignal | undefined, output: OutputMode, attached: boolean, endAcceptance: () => void): Promise<SubmitOutcome> {
  const { options, registry, store, slots } = context;
  if (parts.closing()) throw new DrceError("unavailable", "the node is shutting down");
  validateSpec(input, { allowEnv: options.allowEnv, allowedDirs: options.allowedDirs });
  const withIds = (spec: TaskSpec, reserved: Set<string>): TaskSpec => {
    const id = spec.id !== "" ? spec.id : registry.generateId(reserved);
    reserved.add(id);
    return { ...spec, id, subtasks: spec.subtasks.map((sub) => withIds(sub, reserved)) };
  };
  const spec = withIds(input, new Set());
  const tree = flatten(spec, "");
  // A user the task may not run as is refused before anything is stored.
  for (const { spec: task } of tree) sessionRunnerFor(context.sessions, task).userFor(task);
  // Each task's request is converted to its stored form once: the digest is taken over it
  // and the store writes it.
  const storedSpecs = tree.map(({ spec: task }) => toStoredSpec(task));
  const digest = storedSpecDigest(storedSpecs[0]!);

  // Everything from here to the reservation is synchronous, so concurrent identical
  // submissions see each other: exactly one of them creates the task.
  const existing = registry.get(spec.id);
  if (existing !== undefined) {
    if (existing.digest !== digest || existing.status.parentId !== "") {
      throw new DrceError("exists", `task id ${spec.id} is already used by a different request`, { legacyCode: ErrorCode.CreateTask });
    }
    await existing.accepted;
    endAcceptance();
    const release = context.hold(existing);
    try {
      if (spec.mode === TaskMode.Sync) await waitDone(existing, signal);
      return { view: await viewOf(context, existing, spec.mode === TaskMode.Sync ? output : "none", false), existing: true };
    } finally {
      release();
    }
  }
  // A full disk takes no new work (the room left keeps running tasks' final states);
  // a resubmission of a task the node has is answered above.
  if (store.space.recheck()) {
    throw new DrceError("unavailable", "storage error: the disk is full (ENOSPC); the node takes no new tasks until space is freed", { legacyCode: ErrorCode.InternalFo });
  }
  for (const { spec: task } of tree) {
    if (registry.has(task.id)) throw new DrceError("exists", `task id ${task.id} is already used`, { legacyCode: ErrorCode.CreateTask });
    if (task.alias !== "") {
      const holder = registry.aliasHolder(task.alias);
      if (holder !== undefined && !isFinalState(holder.status.state)) {
        throw new DrceError("exists", `alias ${task.alias} is held by unfinished task ${holder.status.id}`, { legacyCode: ErrorCode.CreateTask });
      }
    }
  }
  slots.reserve(tree.length);
  const now = Date.now();
  const statuses = tree.map(({ spec: task, parentId }) =>
    taskStatus({
      id: task.id,
      alias: task.alias,
      parentId,
      subtaskIds: task.subtasks.map((s) => s.id),
      mode: task.mode,
      state: parentId === "" ? TaskState.New : TaskState.Queued,
      submittedAt: now,
      command: commandSummary(task),
      inputSize: task.input.length,
    }),
  );
  const digests = tree.map(({ parentId }, i) => (parentId === "" ? digest : storedSpecDigest(storedSpecs[i]!)));
  // Every task is on disk before it runs, sync or async, so that a node that dies (or a host
  // that loses power) never leaves a process it cannot account for.
  const accepted = Promise.all(tree.map((_, i) => store.create({ digest: digests[i]!, spec: storedSpecs[i]! }, statuses[i]!))).then(() => undefined);
  const made: TaskRecord[] = tree.map(({ spec: task, parentId }, i) => ({
    status: statuses[i]!,
    digest: digests[i]!,
    spec: task,
    accepted,
    run: new TaskRun({ attached: attached && parentId === "", onError: (error) => context.reportInternal(task.id, error) }),
  }));
  for (const record of made) registry.add(record);
  try {
    await accepted;
  } catch (error) {
    slots.unreserve(made.length);
    for (const record of made) registry.delete(record);
    // A refused submission leaves nothing on disk by the time the caller hears of it.
    await Promise.all(made.map((record) => store.remove(record.status.id).catch((removal: unknown) => context.reportInternal(record.status.id, removal))));
    throw error;
  }
  const root = made[0]!;
  endAcceptance();
  for (const record of made) context.publish(record.status);
  parts.accepted();
  // The sync caller's result is read before the retention sweep may take the tree.
  const release = spec.mode === TaskMode.Async ? undefined : context.hold(root);
  void parts.launch(root);
  if (release === undefined) return { view: await viewOf(context, root, "none", false), existing: false };
  try {
    await waitDone(root, signal);
    const view = await viewOf(context, root, output, false);
    if (spec.cleanup) await parts.cleanupDelivered(root, view);
    return { view, existing: false };
  } finally {
    release();
  }
}
