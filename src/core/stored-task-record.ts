import { fromStoredSpec } from "../domain/spec-json.js";
import { taskSpec, type TaskSpec, type TaskStatus } from "../domain/task.js";
import type { TaskStore } from "../store/task-store.js";
import type { TaskRecord } from "./task-registry.js";
import { TaskRun } from "./task-run.js";

// Every stored task's run is over: one run that is done serves them all (a run that is done
// ignores stops, usage and deadlines, so nothing of one task can reach another through it).
const finishedRun = TaskRun.finished();
const alreadyAccepted = Promise.resolve();

/**
 * A finished task loaded from the store, as the node keeps it: its status alone (what routing,
 * listing, views and retention read), and the store it came from. Its request (spec and
 * digest) stays on disk and is read when a call asks for it (an idempotent resubmission, a
 * fetch that may clean up, a write to its stdin), so the node's memory grows with the status
 * of each stored task, not with its request. A request that cannot be read reads as the one
 * the loader used to make up: the task's id and command, and no digest.
 */
export class StoredTaskRecord implements TaskRecord {
  /** The task's status (final; see {@link TaskRecord.status}). */
  status: TaskStatus;
  readonly #store: TaskStore;

  /** Keeps a loaded task's status; its request is read from `store` on demand. */
  constructor(status: TaskStatus, store: TaskStore) {
    this.status = status;
    this.#store = store;
  }

  /** The request's digest, read from the store (empty when the request cannot be read). */
  get digest(): string {
    return this.#store.readRequestNow(this.status.id)?.digest ?? "";
  }

  /** The request, read from the store (secrets were never stored: they are empty). */
  get spec(): TaskSpec {
    const request = this.#store.readRequestNow(this.status.id);
    return request !== undefined ? fromStoredSpec(request.spec) : taskSpec({ id: this.status.id, command: this.status.command });
  }

  /** The run, which is done. */
  get run(): TaskRun {
    return finishedRun;
  }

  /** Resolved: a stored task was accepted by an earlier run of the node. */
  get accepted(): Promise<void> {
    return alreadyAccepted;
  }
}
