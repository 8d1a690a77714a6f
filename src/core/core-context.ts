import type { TaskStatus } from "../domain/task.js";
import type { TaskStore } from "../store/task-store.js";
import type { SessionTable } from "./session-table.js";
import type { Slots } from "./slots.js";
import type { TaskCoreOptions } from "./task-core-options.js";
import type { TaskRecord, TaskRegistry } from "./task-registry.js";

/** What the core's concerns share: its options, parts, and the few operations they all use. */
export interface CoreContext {
  readonly options: TaskCoreOptions;
  readonly store: TaskStore;
  readonly registry: TaskRegistry;
  readonly slots: Slots;
  /** The session runner of each session type the node runs. */
  readonly sessions: SessionTable;
  /** Most bytes of each stream a view carries inline. */
  readonly inlineBytes: number;
  /** Changes a task's status in memory, persists it durably, and publishes a change of state. */
  update(record: TaskRecord, changes: Partial<TaskStatus>, point?: string): Promise<void>;
  /** Publishes a status as an event to watchers (and queues a final tree for retention). */
  publish(status: TaskStatus): void;
  /** Keeps a task's tree from the retention sweep until the returned function is called. */
  hold(record: TaskRecord): () => void;
  /** Reports a fault of the node (not of the task): counted, and logged by the node. */
  reportInternal(taskId: string, error: unknown): void;
}

/** Milliseconds a task has run: up to now while it runs, up to its end once final. */
export function timeOf(status: TaskStatus): number {
  return status.startedAt === 0 ? 0 : Math.max(0, (status.finishedAt === 0 ? Date.now() : status.finishedAt) - status.startedAt);
}
