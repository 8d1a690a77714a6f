import type { TaskStatus } from "../domain/task.js";
import type { TaskEvent } from "./api.js";
import { SequenceLog } from "./sequence-log.js";

/**
 * The node's task event log (legacy notification 100): every state change gets the next
 * sequence number and is kept in a bounded history for watchers that resume.
 */
export class EventLog extends SequenceLog<TaskEvent> {
  constructor(capacity = 10_000) {
    super(capacity);
  }

  /** Appends an event for a status change and wakes watchers. */
  publish(status: TaskStatus, timeMs: number): TaskEvent {
    return this.append((seq) => ({ seq, status, timeMs, at: Date.now() }));
  }
}
