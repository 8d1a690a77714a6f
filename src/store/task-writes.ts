import type { TaskStore } from "./task-store.js";

/**
 * The store's write path: a task's acceptance, its statuses and its removal. Two make it:
 * the journaled one (journaled-task-writes.ts) and the one of atomic durable files
 * (direct-task-writes.ts); {@link TaskStore} uses one or the other.
 */
export type TaskWrites = Pick<TaskStore, "create" | "saveStatus" | "remove">;
