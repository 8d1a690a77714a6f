import { DrceError } from "../domain/errors.js";

/** How long queued tasks may be held back while acceptances are pending: whichever bound comes first. */
export interface AcceptFirstBound {
  /** Milliseconds from the first start held back until starting resumes regardless. */
  readonly ms: number;
  /** Acceptances completed while a start is held back after which starting resumes regardless. */
  readonly acceptances: number;
}

/**
 * The default bound on holding queued tasks back for acceptances: 50 ms or 64 acceptances.
 * 50 ms is above the time a burst of 32 submissions takes to be accepted on a busy 2-core
 * node (so such a burst is answered before any start), and short next to any task's run;
 * 64 acceptances cover two bursts of 32 in flight where acceptances are faster than that.
 */
export const defaultAcceptFirstBound: AcceptFirstBound = Object.freeze({ ms: 50, acceptances: 64 });

/** Options of {@link Slots} besides its limit and queue length. */
export interface SlotsOptions {
  /** How long starts wait for pending acceptances; {@link defaultAcceptFirstBound} unless given. */
  readonly bound?: AcceptFirstBound;
  /** Called each time the bound, not the end of the pending acceptances, resumed starting. */
  readonly onBoundReached?: () => void;
}

/**
 * Execution slots: at most `limit` tasks run at once; the rest wait in FIFO order, at
 * most `maxQueue` of them. A waiter may give up (ttl passed, task terminated).
 *
 * Acceptance comes first: while a submission's acceptance is pending
 * ({@link Slots.beginAcceptance} until its end is called), a free slot is not handed to a
 * queued task. Starting resumes as soon as no acceptance is pending, or once the
 * {@link AcceptFirstBound} has passed since a start was first held back, so that a
 * continuous stream of submissions never starves the queue.
 */
export class Slots {
  private running = 0;
  private reserved = 0;
  private readonly waiting: { resolve: (ok: boolean) => void }[] = [];
  private accepting = 0;
  // Set while a start is held back: the bound's timer and the acceptances counted since.
  private holdTimer: NodeJS.Timeout | undefined;
  private acceptedWhileHeld = 0;
  private readonly bound: AcceptFirstBound;
  private readonly onBoundReached: (() => void) | undefined;

  /** Makes `limit` slots with a queue of `maxQueue`; `options` set the acceptance bound. */
  constructor(
    readonly limit: number,
    readonly maxQueue: number,
    options: SlotsOptions = {},
  ) {
    this.bound = options.bound ?? defaultAcceptFirstBound;
    this.onBoundReached = options.onBoundReached;
  }

  /** Acceptances pending now. */
  get acceptancesPending(): number {
    return this.accepting;
  }

  /**
   * Marks a submission's acceptance as pending (its request checked, its tasks being
   * registered and their accepted records written); returns the function that ends it,
   * which may be called more than once.
   */
  beginAcceptance(): () => void {
    this.accepting++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.accepting--;
      if (this.holdTimer === undefined) return;
      this.acceptedWhileHeld++;
      if (this.accepting === 0 || this.acceptedWhileHeld >= this.bound.acceptances) this.resume(this.accepting !== 0);
    };
  }

  /** True while free slots are kept from queued tasks for pending acceptances. */
  private get holding(): boolean {
    return this.accepting > 0;
  }

  /** Starts the bound's clock when a start is first held back. */
  private hold(): void {
    if (this.holdTimer !== undefined) return;
    this.acceptedWhileHeld = 0;
    this.holdTimer = setTimeout(() => this.resume(true), this.bound.ms);
    // A held start is resumed by the acceptance's end too: the timer alone must not keep a process.
    this.holdTimer.unref();
  }

  /** Hands every free slot to the first waiters; `byBound` tells the bound (not the last acceptance's end) resumed them. */
  private resume(byBound: boolean): void {
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    if (byBound && this.waiting.length > 0 && this.running < this.limit) this.onBoundReached?.();
    while (this.running < this.limit && this.waiting.length > 0) {
      this.running++;
      this.waiting.shift()!.resolve(true);
    }
  }

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
    return this.running < this.limit && this.waiting.length === 0 && !this.holding;
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
    if (this.running < this.limit && this.waiting.length === 0 && !this.holding) {
      this.running++;
      return Promise.resolve(true);
    }
    if (this.running < this.limit) this.hold();
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

  /** Gives a slot back, handing it to the first waiter unless acceptances are pending. */
  release(): void {
    if (this.holding && this.waiting.length > 0) {
      this.running--;
      this.hold();
      return;
    }
    const next = this.waiting.shift();
    if (next !== undefined) next.resolve(true);
    else this.running--;
  }
}
