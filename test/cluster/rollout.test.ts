import { describe, expect, it } from "vitest";
import { isNodeError, rollout } from "../../src/cluster/rollout.js";
import { DrceError, ErrorCode } from "../../src/domain/errors.js";
import type { NodeResult } from "../../src/domain/placement.js";
import { taskStatus } from "../../src/domain/task.js";

function finished(node: string, exitStatus = 0): NodeResult {
  return { node, status: "finished", view: { status: taskStatus({ id: "t", exitStatus }), timeMs: 1, subtasks: [] }, errorCode: 0, errorMessage: "" };
}

function unreachable(node: string): NodeResult {
  return { node, status: "unreachable", errorCode: ErrorCode.InternalFo, errorMessage: `node ${node} is unreachable` };
}

/**
 * A scripted `start`: each call waits until the test ends it, so that the test decides the order
 * in which nodes finish, and counts how many calls are pending at once.
 */
function scripted() {
  const waiting = new Map<string, (result: NodeResult) => void>();
  const started: string[] = [];
  let pending = 0;
  let peak = 0;
  const start = (node: string): Promise<NodeResult> => {
    started.push(node);
    pending += 1;
    peak = Math.max(peak, pending);
    return new Promise((resolve) =>
      waiting.set(node, (result) => {
        pending -= 1;
        waiting.delete(node);
        resolve(result);
      }),
    );
  };
  /** Lets the rollout react to what ended (its callbacks run as microtasks). */
  const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
  return {
    start,
    started,
    waiting: () => [...waiting.keys()],
    peak: () => peak,
    async end(node: string, result: NodeResult = finished(node)): Promise<void> {
      const resolve = waiting.get(node);
      if (resolve === undefined) throw new Error(`${node} is not running`);
      resolve(result);
      await settle();
    },
    settle,
  };
}

const nodes = (count: number) => Array.from({ length: count }, (_, index) => `n${String(index).padStart(2, "0")}`);

describe("rollout", () => {
  it("starts every node at once without a concurrency bound, and gives the results in the order given", async () => {
    const script = scripted();
    const seen: string[] = [];
    const run = rollout(["b", "a", "c"], { signal: new AbortController().signal, onResult: (result) => seen.push(result.node) }, script.start);
    await script.settle();
    expect(script.waiting()).toEqual(["b", "a", "c"]);
    await script.end("c");
    await script.end("b", finished("b", 3));
    await script.end("a");
    const results = await run;
    expect(results.map((result) => [result.node, result.status])).toEqual([
      ["b", "finished"],
      ["a", "finished"],
      ["c", "finished"],
    ]);
    expect(seen).toEqual(["c", "b", "a"]);
    expect(script.peak()).toBe(3);
  });

  it("never has more than max-concurrency calls pending, starting the next node as one ends", async () => {
    const script = scripted();
    const all = nodes(10);
    const run = rollout(all, { maxConcurrency: { kind: "count", value: 3 }, signal: new AbortController().signal }, script.start);
    await script.settle();
    expect(script.waiting()).toEqual(["n00", "n01", "n02"]);
    // Ending them out of order still starts the nodes in the order given.
    await script.end("n01");
    expect(script.started).toEqual(["n00", "n01", "n02", "n03"]);
    while (script.waiting().length > 0) {
      expect(script.waiting().length).toBeLessThanOrEqual(3);
      await script.end(script.waiting().at(-1)!);
    }
    const results = await run;
    expect(results.map((result) => result.node)).toEqual(all);
    expect(results.every((result) => result.status === "finished")).toBe(true);
    expect(script.peak()).toBe(3);
  });

  it("takes max-concurrency as a percentage of the nodes, rounded up", async () => {
    const script = scripted();
    const run = rollout(nodes(7), { maxConcurrency: { kind: "percent", value: 30 }, signal: new AbortController().signal }, script.start);
    await script.settle();
    // 30% of 7 is 2.1: three at once.
    expect(script.waiting()).toHaveLength(3);
    while (script.waiting().length > 0) await script.end(script.waiting()[0]!);
    await run;
    expect(script.peak()).toBe(3);
  });

  it("stops starting nodes once max-errors results are errors, and reports the rest as not started", async () => {
    const script = scripted();
    const seen: NodeResult[] = [];
    const run = rollout(nodes(6), { maxConcurrency: { kind: "count", value: 2 }, maxErrors: { kind: "count", value: 2 }, signal: new AbortController().signal, onResult: (result) => seen.push(result) }, script.start);
    await script.settle();
    await script.end("n00", finished("n00", 1));
    expect(script.waiting()).toEqual(["n01", "n02"]);
    await script.end("n02", unreachable("n02"));
    // Two errors: no further node starts, and the one already running is left to finish.
    expect(script.waiting()).toEqual(["n01"]);
    await script.end("n01");
    const results = await run;
    expect(script.started).toEqual(["n00", "n01", "n02"]);
    expect(results.map((result) => [result.node, result.status])).toEqual([
      ["n00", "finished"],
      ["n01", "finished"],
      ["n02", "unreachable"],
      ["n03", "not-started"],
      ["n04", "not-started"],
      ["n05", "not-started"],
    ]);
    expect(results[3]).toEqual({ node: "n03", status: "not-started", errorCode: 0, errorMessage: "not started: 2 nodes failed (max errors 2)" });
    expect(seen.map((result) => result.node)).toEqual(["n00", "n02", "n01", "n03", "n04", "n05"]);
  });

  it("takes max-errors as a percentage of the nodes, rounded up", async () => {
    const script = scripted();
    // 10% of 12 is 1.2: the second error stops the rollout.
    const run = rollout(nodes(12), { maxConcurrency: { kind: "count", value: 1 }, maxErrors: { kind: "percent", value: 10 }, signal: new AbortController().signal }, script.start);
    await script.settle();
    await script.end("n00", finished("n00", 2));
    await script.end("n01");
    await script.end("n02", unreachable("n02"));
    const results = await run;
    expect(script.started).toEqual(["n00", "n01", "n02"]);
    expect(results.filter((result) => result.status === "not-started")).toHaveLength(9);
    expect(results[11]!.errorMessage).toBe("not started: 2 nodes failed (max errors 2)");
  });

  it("gives a node whose start throws or rejects a failed item naming it, never a gap", async () => {
    const results = await rollout(["a", "b", "c"], { signal: new AbortController().signal }, async (node) => {
      if (node === "a") throw new DrceError("unavailable", "connection refused", { legacyCode: ErrorCode.InternalFo });
      if (node === "b") throw new Error("socket hang up");
      return finished(node);
    });
    expect(results).toEqual([
      { node: "a", status: "failed", errorCode: ErrorCode.InternalFo, errorMessage: "node a: connection refused" },
      { node: "b", status: "failed", errorCode: ErrorCode.InternalFo, errorMessage: "node b: socket hang up" },
      finished("c"),
    ]);
  });

  it("stops starting nodes when its signal aborts, waiting for the ones started", async () => {
    const script = scripted();
    const controller = new AbortController();
    const run = rollout(nodes(4), { maxConcurrency: { kind: "count", value: 2 }, signal: controller.signal }, script.start);
    await script.settle();
    controller.abort();
    await script.end("n00");
    expect(script.waiting()).toEqual(["n01"]);
    await script.end("n01");
    const results = await run;
    expect(results.map((result) => result.status)).toEqual(["finished", "finished", "not-started", "not-started"]);
    expect(results[2]!.errorMessage).toBe("not started: the fan-out was stopped");
  });

  it("resolves at once with no results for no nodes", async () => {
    await expect(rollout([], { maxConcurrency: { kind: "percent", value: 50 }, signal: new AbortController().signal }, () => Promise.reject(new Error("never called")))).resolves.toEqual([]);
  });

  it("counts as errors everything but a finished run with exit status 0 and error code 0", () => {
    expect(isNodeError(finished("a"))).toBe(false);
    expect(isNodeError(finished("a", 1))).toBe(true);
    expect(isNodeError({ ...finished("a"), errorCode: ErrorCode.InternalFo })).toBe(true);
    const failedInside = finished("a");
    expect(isNodeError({ ...failedInside, view: { ...failedInside.view!, status: taskStatus({ id: "t", errorCode: ErrorCode.CommandExecution }) } })).toBe(true);
    for (const status of ["running", "failed", "timed-out", "unreachable", "not-started"] as const) {
      expect(isNodeError({ node: "a", status, errorCode: 0, errorMessage: "" })).toBe(true);
    }
  });
});
