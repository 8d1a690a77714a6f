/** Why the retention sweep deleted a task tree. */
export type RetentionReason = "age" | "count";

/** Options of {@link createRetention}. */
export interface RetentionOptions {
  /** How long a finished task tree is kept, ms; zero: no bound by age. */
  readonly retainFinishedMs: number;
  /** How many tasks (subtasks included) the node holds at most; zero: no bound by count. */
  readonly maxTasks: number;
  /** Tasks the node holds now, finished or not. */
  size(): number;
  /**
   * Deletes a finished tree for a reason; resolves to false when it cannot go now (a
   * caller is still receiving its result), in which case it stays queued.
   */
  remove(rootId: string, reason: RetentionReason): Promise<boolean>;
  /** Called with a deletion that failed (the tree is forgotten all the same). */
  onError(rootId: string, error: unknown): void;
  /** Called after a sweep that deleted trees, with their number. */
  onSwept?(trees: number): void;
  /** The clock, Unix ms; tests leave it alone. */
  readonly now?: () => number;
}

/**
 * The retention policy of finished task trees: the oldest finished trees go once they are
 * older than the age bound, or while the node holds more tasks than the count bound.
 * Unfinished trees are never queued, so never deleted.
 */
export interface Retention {
  /** Queues a tree that has just become final (all of it) at `at`, Unix ms. */
  finished(rootId: string, at: number): void;
  /** Drops a tree from the queue (it was deleted some other way). */
  forget(rootId: string): void;
  /** Asks for a sweep soon: the count may have grown, or a held tree was let go. */
  poke(): void;
  /** Sweeps now; resolves to the number of trees deleted. */
  sweep(): Promise<number>;
  /** Stops sweeping; a sweep under way finishes its current deletion. */
  close(): void;
}

/**
 * Longest single timer: setTimeout fires at once past 2^31-1 ms, and a bound of weeks must
 * not turn into a sweep loop. A longer wait is taken in several steps.
 */
const longestWaitMs = 3_600_000;

/**
 * Creates the retention queue. Trees are queued in the order they became final, which is
 * the order of their finish times (the node's clock moves forward), so a sweep looks at the
 * front of the queue only and costs what it deletes, not what the node holds. One timer is
 * armed for the next tree to pass the age bound.
 */
export function createRetention(options: RetentionOptions): Retention {
  const now = options.now ?? Date.now;
  const queue = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  let sweeping: Promise<number> | undefined;
  let again = false;
  let scheduled = false;
  let closed = false;
  const ageBound = options.retainFinishedMs;
  const countBound = options.maxTasks;

  const over = (): boolean => countBound > 0 && options.size() > countBound;

  const wake = (inMs: number): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      void sweep();
    }, Math.min(inMs, longestWaitMs));
    // A node with nothing else to do exits on SIGTERM without waiting for it.
    timer.unref();
  };

  /**
   * Arms the timer for the first queued tree that was still within the age bound at `sweptAt`,
   * the clock of the sweep just made. Trees before it were due then and were tried: those left
   * are held by a caller and come back with its poke(). The first one not tried may have become
   * due since (the clock moves during a sweep): its timer is then armed for at once.
   */
  const arm = (sweptAt: number): void => {
    clearTimeout(timer);
    timer = undefined;
    if (closed || ageBound === 0) return;
    for (const finishedAt of queue.values()) {
      const due = finishedAt + ageBound;
      if (due <= sweptAt) continue;
      wake(Math.max(0, due - now()));
      return;
    }
  };

  /** The clock of the last sweep's pass over the queue. */
  let sweptAt = 0;

  const run = async (): Promise<number> => {
    let deleted = 0;
    const at = now();
    sweptAt = at;
    for (const [rootId, finishedAt] of queue) {
      if (closed) break;
      const old = ageBound > 0 && finishedAt + ageBound <= at;
      if (!old && !over()) break;
      let removed = false;
      try {
        removed = await options.remove(rootId, old ? "age" : "count");
      } catch (error) {
        queue.delete(rootId);
        options.onError(rootId, error);
        continue;
      }
      if (removed) {
        queue.delete(rootId);
        deleted++;
      }
    }
    return deleted;
  };

  const sweep = async (): Promise<number> => {
    if (sweeping !== undefined) {
      // A sweep under way may have passed the trees that made this call; run once more after it.
      again = true;
      return sweeping;
    }
    let total = 0;
    sweeping = (async () => {
      do {
        again = false;
        total += await run();
      } while (again && !closed);
      arm(sweptAt);
      if (total > 0) options.onSwept?.(total);
      return total;
    })();
    try {
      return await sweeping;
    } finally {
      sweeping = undefined;
    }
  };

  const soon = (): void => {
    if (scheduled || closed) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      void sweep();
    });
  };

  return {
    finished(rootId, at) {
      if (closed || queue.has(rootId)) return;
      queue.set(rootId, at);
      // Constant time: a node loading a hundred thousand finished trees calls this for each.
      if (over() || (ageBound > 0 && at + ageBound <= now())) soon();
      else if (ageBound > 0 && timer === undefined && sweeping === undefined) wake(at + ageBound - now());
    },
    forget(rootId) {
      queue.delete(rootId);
    },
    poke() {
      // Only the front can be due: the queue is in finishing order.
      const first = queue.values().next();
      if (over() || (ageBound > 0 && first.done !== true && first.value + ageBound <= now())) soon();
    },
    sweep,
    close() {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
