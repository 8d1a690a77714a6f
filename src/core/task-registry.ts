import { DrceError, ErrorCode } from "../domain/errors.js";
import { isFinalState } from "../domain/states.js";
import type { TaskSpec, TaskStatus } from "../domain/task.js";
import type { TaskRun } from "./task-run.js";

/** A task the node holds: its status, its request, and its run. */
export interface TaskRecord {
  /** The task's status as last changed (see {@link TaskRegistry}'s users: only the run and the loader change it). */
  status: TaskStatus;
  /** The digest of the request that made it (idempotent resubmissions compare it). */
  readonly digest: string;
  /** The request; secrets are present only for tasks submitted since start. */
  readonly spec: TaskSpec;
  /** The task's run; a task loaded from the store has one that is done. */
  readonly run: TaskRun;
  /** Resolves when the submission that made this task is durable (rejects when it failed). */
  readonly accepted: Promise<void>;
}

let idCounter = 0;

/**
 * The tasks the node holds by id, and the alias each alias stands for: an alias names the
 * newest task that took it.
 */
export class TaskRegistry {
  readonly #records = new Map<string, TaskRecord>();
  readonly #aliases = new Map<string, string>();

  /** Number of tasks held. */
  get size(): number {
    return this.#records.size;
  }

  /** Every task held, in the order they were added. */
  values(): IterableIterator<TaskRecord> {
    return this.#records.values();
  }

  /** The task with this id. */
  get(id: string): TaskRecord | undefined {
    return this.#records.get(id);
  }

  /** Tells whether a task has this id. */
  has(id: string): boolean {
    return this.#records.has(id);
  }

  /** The task an id or alias names; a DrceError ("not-found", legacy 0) when none does. */
  resolve(ref: string): TaskRecord {
    const record = this.#records.get(ref) ?? this.#records.get(this.#aliases.get(ref) ?? "");
    if (record === undefined) throw new DrceError("not-found", `no task ${JSON.stringify(ref)}`, { legacyCode: ErrorCode.None });
    return record;
  }

  /** The id an id or alias stands for, or the ref itself when it names no task (a watch of a task to come). */
  idOf(ref: string): string {
    return this.#records.get(ref)?.status.id ?? this.#aliases.get(ref) ?? ref;
  }

  /** The task that holds an alias now, if any. */
  aliasHolder(alias: string): TaskRecord | undefined {
    return this.#records.get(this.#aliases.get(alias) ?? "");
  }

  /** Adds a task; its alias names it from now on. */
  add(record: TaskRecord): void {
    this.#records.set(record.status.id, record);
    if (record.status.alias !== "") this.#aliases.set(record.status.alias, record.status.id);
  }

  /**
   * Adds a task loaded from the store: its alias names it only when no task loaded before
   * holds it with a later submission.
   */
  addLoaded(record: TaskRecord): void {
    this.#records.set(record.status.id, record);
    const alias = record.status.alias;
    if (alias === "") return;
    const holder = this.aliasHolder(alias);
    if (holder === undefined || holder.status.submittedAt < record.status.submittedAt) this.#aliases.set(alias, record.status.id);
  }

  /** Forgets a task, and its alias when it still names it. */
  delete(record: TaskRecord): void {
    this.#records.delete(record.status.id);
    if (this.#aliases.get(record.status.alias) === record.status.id) this.#aliases.delete(record.status.alias);
  }

  /** Generates a numeric task id no task holds (legacy callers expect numbers). */
  generateId(reserved: ReadonlySet<string>): string {
    for (;;) {
      idCounter = (idCounter + 1) % 1000;
      const id = String(Date.now() * 1000 + idCounter);
      if (!this.#records.has(id) && !reserved.has(id)) return id;
    }
  }

  /** The subtasks of a task still held, in request order. */
  subtasksOf(record: TaskRecord): TaskRecord[] {
    return record.status.subtaskIds.map((id) => this.#records.get(id)).filter((sub): sub is TaskRecord => sub !== undefined);
  }

  /** The root of a task's tree (a subtask whose parent was deleted is a root of its own). */
  rootOf(record: TaskRecord): TaskRecord {
    let current = record;
    for (;;) {
      const parent = current.status.parentId === "" ? undefined : this.#records.get(current.status.parentId);
      if (parent === undefined) return current;
      current = parent;
    }
  }

  /** Tells whether a task and every subtask below it are final. */
  treeFinal(record: TaskRecord): boolean {
    return isFinalState(record.status.state) && this.subtasksOf(record).every((sub) => this.treeFinal(sub));
  }

  /** Resolves once the task and every subtask below it (async ones too) are final. */
  async treeDone(record: TaskRecord): Promise<void> {
    await record.run.done;
    await Promise.all(this.subtasksOf(record).map((sub) => this.treeDone(sub)));
  }
}
