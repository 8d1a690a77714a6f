import { DrceError } from "../domain/errors.js";

/**
 * Execution slots: at most `limit` tasks run at once; the rest wait in FIFO order, at
 * most `maxQueue` of them. A waiter may give up (ttl passed, task terminated).
 */
export class Slots {
  private running = 0;
  private readonly waiting: { resolve: (ok: boolean) => void }[] = [];

  constructor(
    readonly limit: number,
    readonly maxQueue: number,
  ) {}

  /** Tasks running now. */
  get active(): number {
    return this.running;
  }

  /** Tasks waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Tells whether a slot is free right now. */
  get free(): boolean {
    return this.running < this.limit && this.waiting.length === 0;
  }

  /** Throws "exhausted" when `count` more waiters would not fit in the queue. */
  ensureRoom(count: number): void {
    const freeSlots = Math.max(0, this.limit - this.running - this.waiting.length);
    if (count - freeSlots > 0 && this.waiting.length + count - freeSlots > this.maxQueue) {
      throw new DrceError("exhausted", `the node's task queue is full (${this.maxQueue} waiting)`, { retryAfterMs: 1000 });
    }
  }

  /**
   * Takes a slot, waiting when none is free. Resolves true with the slot, or false when
   * the signal aborted first.
   */
  acquire(signal?: AbortSignal): Promise<boolean> {
    if (this.running < this.limit && this.waiting.length === 0) {
      this.running++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const waiter = {
        resolve: (ok: boolean) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(ok);
        },
      };
      const onAbort = (): void => {
        const index = this.waiting.indexOf(waiter);
        if (index >= 0) this.waiting.splice(index, 1);
        waiter.resolve(false);
      };
      this.waiting.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Gives a slot back, handing it to the first waiter. */
  release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next.resolve(true);
    else this.running--;
  }
}
