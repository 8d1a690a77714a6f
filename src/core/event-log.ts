import type { TaskStatus } from "../domain/task.js";
import type { TaskEvent } from "./api.js";

/**
 * The node's task event log: every state change gets the next sequence number and is
 * kept in a bounded history, so a watcher that reconnects with its last number misses
 * nothing still in the history. Watchers far behind are handed the oldest kept event.
 */
export class EventLog {
  private readonly history: TaskEvent[] = [];
  private nextSeq = 1;
  private readonly listeners = new Set<() => void>();

  constructor(readonly capacity = 10_000) {}

  /** The last sequence number given out (zero before any event). */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** Appends an event for a status change and wakes watchers. */
  publish(status: TaskStatus, timeMs: number): TaskEvent {
    const event: TaskEvent = { seq: this.nextSeq++, status, timeMs, at: Date.now() };
    this.history.push(event);
    if (this.history.length > this.capacity) this.history.splice(0, this.history.length - this.capacity);
    for (const listener of [...this.listeners]) listener();
    return event;
  }

  /** Kept events with a sequence number greater than `afterSeq`. */
  since(afterSeq: number): TaskEvent[] {
    const first = this.history[0];
    if (first === undefined) return [];
    const start = Math.max(0, afterSeq + 1 - first.seq);
    return this.history.slice(start);
  }

  /**
   * Streams events after `afterSeq` (zero: only new ones; -1: the whole kept history)
   * until the signal aborts.
   */
  async *watch(afterSeq: number, signal: AbortSignal, filter: (event: TaskEvent) => boolean = () => true): AsyncGenerator<TaskEvent> {
    let cursor = afterSeq === 0 ? this.lastSeq : afterSeq < 0 ? 0 : afterSeq;
    while (!signal.aborted) {
      const batch = this.since(cursor);
      for (const event of batch) {
        cursor = event.seq;
        if (filter(event)) yield event;
        if (signal.aborted) return;
      }
      if (batch.length === 0) await this.changed(signal);
    }
  }

  private changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.listeners.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.listeners.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}
