/**
 * A bounded, numbered history that watchers can resume from: every appended item gets the
 * next sequence number, and a watcher that reconnects with its last number misses nothing
 * still in the history. Watchers far behind are handed the oldest kept item.
 */
export class SequenceLog<T extends { readonly seq: number }> {
  private readonly history: T[] = [];
  private nextSeq = 1;
  private readonly listeners = new Set<() => void>();

  constructor(readonly capacity: number) {}

  /** The last sequence number given out (zero before any item). */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** The sequence number of the oldest kept item (lastSeq + 1 while nothing is kept). */
  get oldestSeq(): number {
    return this.history[0]?.seq ?? this.nextSeq;
  }

  /** Appends the item `make` builds for the next sequence number, and wakes watchers. */
  append(make: (seq: number) => T): T {
    const item = make(this.nextSeq++);
    this.history.push(item);
    if (this.history.length > this.capacity) this.history.splice(0, this.history.length - this.capacity);
    for (const listener of [...this.listeners]) listener();
    return item;
  }

  /** Kept items with a sequence number greater than `afterSeq`. */
  since(afterSeq: number): T[] {
    const first = this.history[0];
    if (first === undefined) return [];
    const start = Math.max(0, afterSeq + 1 - first.seq);
    return this.history.slice(start);
  }

  /**
   * Streams items after `afterSeq` (zero: only new ones; -1: the whole kept history)
   * until the signal aborts.
   */
  async *watch(afterSeq: number, signal: AbortSignal, filter: (item: T) => boolean = () => true): AsyncGenerator<T> {
    let cursor = afterSeq === 0 ? this.lastSeq : afterSeq < 0 ? 0 : afterSeq;
    while (!signal.aborted) {
      const batch = this.since(cursor);
      for (const item of batch) {
        cursor = item.seq;
        if (filter(item)) yield item;
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
