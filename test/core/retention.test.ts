import { afterEach, describe, expect, it } from "vitest";
import { createRetention, type Retention, type RetentionReason } from "../../src/core/retention.js";
import { until } from "../helpers/node.js";

/*
 * The retention queue on its own: which trees a sweep deletes, in what order and why, with
 * a clock the test moves. The node-level behaviour (real tasks, real files, a restart) is
 * in test/integration/retention.test.ts.
 */

interface Harness {
  readonly retention: Retention;
  /** Tree ids still held, in the order they were added. */
  readonly held: string[];
  /** Deletions made, as "id:reason". */
  readonly deleted: string[];
  readonly errors: string[];
  /** Trees a caller is still receiving; remove() refuses them. */
  readonly busy: Set<string>;
  /** Trees whose deletion fails. */
  readonly broken: Set<string>;
  clock: number;
}

const made: Retention[] = [];
afterEach(() => {
  for (const retention of made.splice(0)) retention.close();
});

function harness(retainFinishedMs: number, maxTasks: number): Harness {
  const h: Harness = {
    held: [],
    deleted: [],
    errors: [],
    busy: new Set(),
    broken: new Set(),
    clock: 1_000_000,
    retention: undefined as unknown as Retention,
  };
  const retention = createRetention({
    retainFinishedMs,
    maxTasks,
    size: () => h.held.length,
    now: () => h.clock,
    remove: async (id: string, reason: RetentionReason) => {
      if (h.busy.has(id)) return false;
      // As in the node, a tree leaves memory before its files do, even when they cannot go.
      h.held.splice(h.held.indexOf(id), 1);
      if (h.broken.has(id)) throw new Error(`cannot delete ${id}`);
      h.deleted.push(`${id}:${reason}`);
      return true;
    },
    onError: (id) => h.errors.push(id),
  });
  made.push(retention);
  (h as { retention: Retention }).retention = retention;
  return h;
}

/** Adds a finished tree at the harness clock. */
function finish(h: Harness, id: string): void {
  h.held.push(id);
  h.retention.finished(id, h.clock);
}

describe("the retention queue", () => {
  it("deletes the oldest finished trees while the count is past its bound, and no more", async () => {
    const h = harness(0, 3);
    for (const id of ["a", "b", "c"]) finish(h, id);
    expect(await h.retention.sweep()).toBe(0);
    finish(h, "d");
    finish(h, "e");
    await h.retention.sweep();
    expect(h.deleted).toEqual(["a:count", "b:count"]);
    expect(h.held).toEqual(["c", "d", "e"]);
  });

  it("counts unfinished tasks in the size but deletes only what it was given", async () => {
    const h = harness(0, 2);
    h.held.push("running-1", "running-2", "running-3");
    finish(h, "done");
    await h.retention.sweep();
    expect(h.deleted).toEqual(["done:count"]);
    expect(h.held).toEqual(["running-1", "running-2", "running-3"]);
    expect(await h.retention.sweep()).toBe(0);
  });

  it("deletes trees once they are older than the age bound, by their finishing time", async () => {
    const h = harness(60_000, 0);
    finish(h, "old");
    h.clock += 30_000;
    finish(h, "newer");
    h.clock += 29_999;
    expect(await h.retention.sweep()).toBe(0);
    h.clock += 1;
    expect(await h.retention.sweep()).toBe(1);
    expect(h.deleted).toEqual(["old:age"]);
    h.clock += 30_000;
    await h.retention.sweep();
    expect(h.deleted).toEqual(["old:age", "newer:age"]);
  });

  it("leaves a tree a caller is receiving, and takes it on the caller's poke", async () => {
    const h = harness(0, 1);
    finish(h, "first");
    h.busy.add("first");
    finish(h, "second");
    await h.retention.sweep();
    // The busy oldest stays; the bound is met by the next one.
    expect(h.deleted).toEqual(["second:count"]);
    finish(h, "third");
    await h.retention.sweep();
    expect(h.deleted).toEqual(["second:count", "third:count"]);
    expect(h.held).toEqual(["first"]);
    h.held.push("unfinished");
    h.busy.delete("first");
    h.retention.poke();
    await until(() => h.deleted.length, (n) => n === 3, 5000, "the poked sweep");
    expect(h.deleted).toEqual(["second:count", "third:count", "first:count"]);
  });

  it("reports a deletion that fails, forgets that tree, and goes on with the next", async () => {
    const h = harness(0, 1);
    finish(h, "a");
    finish(h, "b");
    finish(h, "c");
    h.broken.add("a");
    await h.retention.sweep();
    expect(h.errors).toEqual(["a"]);
    expect(h.deleted).toEqual(["b:count"]);
    h.broken.delete("a");
    // Forgotten: a later sweep does not try it again (the node's restart finds it on disk).
    await h.retention.sweep();
    expect(h.deleted).toEqual(["b:count"]);
  });

  it("sweeps by itself when a tree finishes past the count, and when the age bound passes", async () => {
    const counted = harness(0, 1);
    finish(counted, "x");
    finish(counted, "y");
    await until(() => counted.deleted, (d) => d.length === 1, 5000, "a sweep after the tree past the bound");
    expect(counted.deleted).toEqual(["x:count"]);

    // The real clock for the timer: a bound of 50 ms.
    const timed = createRetention({
      retainFinishedMs: 50,
      maxTasks: 0,
      size: () => 1,
      remove: async (id) => {
        gone.push(id);
        return true;
      },
      onError: () => undefined,
    });
    made.push(timed);
    const gone: string[] = [];
    const finishedAt = Date.now();
    timed.finished("t", finishedAt);
    await until(() => gone, (g) => g.length === 1, 5000, "the timer's sweep");
    expect(Date.now()).toBeGreaterThanOrEqual(finishedAt + 50);
  });

  it("arms its timer for a tree that became due while a sweep was looking at the queue", async () => {
    // A clock that moves one millisecond at each reading once the sweep starts: the sweep
    // sees the tree 1 ms before its bound, and the queue is looked at again past it.
    let clock = 1_000_000;
    let moving = false;
    const gone: string[] = [];
    const retention = createRetention({
      retainFinishedMs: 50,
      maxTasks: 0,
      size: () => 1,
      now: () => (moving ? clock++ : clock),
      remove: async (id) => {
        gone.push(id);
        return true;
      },
      onError: () => undefined,
    });
    made.push(retention);
    retention.finished("t", clock);
    clock += 49;
    moving = true;
    expect(await retention.sweep()).toBe(0);
    await until(() => gone, (g) => g.length === 1, 5000, "the sweep armed for the tree that became due");
    expect(gone).toEqual(["t"]);
  });

  it("keeps everything with both bounds lifted", async () => {
    const h = harness(0, 0);
    for (let i = 0; i < 1000; i++) finish(h, `t${i}`);
    h.clock += 10 * 365 * 86_400_000;
    expect(await h.retention.sweep()).toBe(0);
    expect(h.held).toHaveLength(1000);
  });
});
