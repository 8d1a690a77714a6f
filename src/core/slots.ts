import { DrceError } from "../domain/errors.js";

/**
 * Execution slots: at most `limit` tasks run at once; the rest wait in FIFO order, at
 * most `maxQueue` of them. A waiter may give up (ttl passed, task terminated).
 */
export class Slots {
  private running = 0;
  private reserved = 0;
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

  /**
   * Reserves room for `count` accepted tasks that will ask for a slot later, or throws
   * "exhausted" when running + waiting + reserved tasks would pass the slots plus the queue.
   * Reserving at acceptance (not at the wait) keeps concurrent submissions from overfilling it.
   */
  reserve(count: number): void {
    if (this.running + this.waiting.length + this.reserved + count > this.limit + this.maxQueue) {
      throw new DrceError("exhausted", `the node's task queue is full (${this.maxQueue} waiting)`, { retryAfterMs: 1000 });
    }
    this.reserved += count;
  }

  /** Gives back reservations of tasks that will never ask for a slot. */
  unreserve(count: number): void {
    this.reserved = Math.max(0, this.reserved - count);
  }

  /**
   * Takes a slot, waiting when none is free. Resolves true with the slot, or false when
   * the signal aborted first.
   */
  acquire(signal?: AbortSignal): Promise<boolean> {
    this.unreserve(1);
    if (signal?.aborted === true) return Promise.resolve(false);
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
