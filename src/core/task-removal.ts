import { isFinalState, TaskState } from "../domain/states.js";
import type { TaskView } from "../domain/view.js";
import type { CoreContext } from "./core-context.js";
import { createRetention, type Retention, type RetentionReason } from "./retention.js";
import type { TaskRecord } from "./task-registry.js";

/** Why a task was deleted: a caller asked (rm, fetch with delete, cleanup), or the retention policy. */
export type DeletionReason = "request" | RetentionReason;

/** Tasks deleted since start, by reason (each task of a tree counts). */
export type DeletionCounts = Readonly<Record<DeletionReason, number>>;

/**
 * Deleting tasks: on request, by a cleanup task's delivered result, and by the retention
 * policy, which leaves a tree alone while a caller holds it (a sync reply, a run, a reader).
 */
export interface TaskRemoval {
  /** The retention queue of finished trees. */
  readonly retention: Retention;
  /** Keeps a task's tree from the retention sweep until the returned function is called. */
  hold(record: TaskRecord): () => void;
  /** Queues a task's tree for retention once all of it is final. */
  noteFinal(id: string): void;
  /** Deletes a task and its subtasks, each with a state 9 event; resolves to the number deleted. */
  removeTree(record: TaskRecord, reason?: DeletionReason): Promise<number>;
  /** Applies a cleanup task's `cleanup` once its result was delivered in `view`. */
  cleanupDelivered(root: TaskRecord, view: TaskView): Promise<void>;
  /** Tasks deleted since start, by reason. */
  deletions(): DeletionCounts;
}

/** Creates the deletion and retention concern of a core. */
export function createTaskRemoval(context: Omit<CoreContext, "hold">): TaskRemoval {
  const { registry, store, options } = context;
  const deletions: Record<DeletionReason, number> = { request: 0, age: 0, count: 0 };
  // Callers still receiving a tree's result, by root id: the retention sweep leaves such a
  // tree until they are done.
  const holds = new Map<string, number>();
  let sweptTasks = 0;

  /** Deletes one task: from memory, the retention queue and the disk, with its state 9 event. */
  const removeOne = async (record: TaskRecord, reason: DeletionReason): Promise<void> => {
    registry.delete(record);
    retention.forget(record.status.id);
    await store.remove(record.status.id);
    deletions[reason]++;
    context.publish({ ...record.status, state: TaskState.Deleted });
  };

  const removeTree = async (record: TaskRecord, reason: DeletionReason = "request"): Promise<number> => {
    let removed = 0;
    for (const sub of registry.subtasksOf(record)) removed += await removeTree(sub, reason);
    await removeOne(record, reason);
    return removed + 1;
  };

  const retention = createRetention({
    retainFinishedMs: options.retainFinishedMs ?? 0,
    maxTasks: options.retainMaxTasks ?? 0,
    size: () => registry.size,
    remove: async (rootId, reason) => {
      const record = registry.get(rootId);
      if (record === undefined) return true;
      if (holds.has(rootId) || !registry.treeFinal(record)) return false;
      sweptTasks += await removeTree(record, reason);
      return true;
    },
    onError: (rootId, error) => context.reportInternal(rootId, error),
    onSwept: (trees) => {
      const tasks = sweptTasks;
      sweptTasks = 0;
      options.onRetentionSweep?.(trees, tasks);
    },
  });

  return {
    retention,
    hold(record) {
      const rootId = registry.rootOf(record).status.id;
      holds.set(rootId, (holds.get(rootId) ?? 0) + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const left = (holds.get(rootId) ?? 1) - 1;
        if (left > 0) holds.set(rootId, left);
        else {
          holds.delete(rootId);
          retention.poke();
        }
      };
    },
    noteFinal(id) {
      const record = registry.get(id);
      if (record === undefined) return;
      const root = registry.rootOf(record);
      if (registry.treeFinal(root)) retention.finished(root.status.id, Date.now());
    },
    removeTree,
    async cleanupDelivered(root, view) {
      // A tree that is final goes at once.
      if (registry.treeFinal(root)) {
        await removeTree(root).catch(() => undefined); // a task left on disk is still deleted by a later delete
        return;
      }
      // Otherwise (async subtasks still queued or running) nothing goes now: once the whole
      // tree is final, the tasks whose final results `view` delivered go, and the subtasks
      // that were unfinished in it stay, checkable and fetchable by id, until a fetch or a
      // delete takes them, like any task whose result nobody has had yet.
      const delivered: string[] = [];
      const collect = (v: TaskView): void => {
        if (isFinalState(v.status.state)) delivered.push(v.status.id);
        for (const sub of v.subtasks) collect(sub);
      };
      collect(view);
      void registry
        .treeDone(root)
        .then(async () => {
          // Each on its own: their subtasks are not followed.
          for (const id of delivered) {
            const record = registry.get(id);
            if (record !== undefined && isFinalState(record.status.state)) await removeOne(record, "request");
          }
        })
        .catch((error: unknown) => context.reportInternal(root.status.id, error));
    },
    deletions: () => ({ ...deletions }),
  };
}
