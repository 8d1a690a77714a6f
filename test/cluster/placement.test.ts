import { describe, expect, it } from "vitest";
import { createPlacer, isPlacementMode, parseNodeCount, parseSelector, parseWeights, resolveNodeCount, unsupportedMode } from "../../src/cluster/placement.js";
import type { Candidate, PlacementDefaults } from "../../src/cluster/placement.js";
import { DrceError, ErrorCode } from "../../src/domain/errors.js";
import { usageFigures } from "../../src/domain/placement.js";
import type { UsageFigure } from "../../src/domain/placement.js";

const idle = Object.fromEntries(usageFigures.map((figure) => [figure, 0])) as Record<UsageFigure, number>;

function node(name: string, fields: Partial<Omit<Candidate, "usage">> & { usage?: Partial<Record<UsageFigure, number>> } = {}): Candidate {
  return { labels: {}, state: "up", freeSlots: 4, ...fields, name, usage: { ...idle, ...fields.usage } };
}

const balanced: PlacementDefaults = { mode: "balanced", weights: {} };

/** Runs `place` expecting a DrceError, and returns it. */
function refusal(run: () => unknown): DrceError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(DrceError);
    return error as DrceError;
  }
  throw new Error("placement did not refuse");
}

describe("selection", () => {
  it("keeps only the named nodes, then only those carrying every label", () => {
    const placer = createPlacer({ mode: "all", weights: {} });
    const nodes = [
      node("c", { labels: { env: "prod", os: "linux" } }),
      node("a", { labels: { env: "prod", os: "bsd" } }),
      node("b", { labels: { env: "prod", os: "linux" } }),
      node("d", { labels: { env: "test", os: "linux" } }),
    ];
    expect(placer.place({ labels: { env: "prod", os: "linux" } }, nodes)).toEqual({ kind: "all", nodes: ["b", "c"], down: [], unknown: [] });
    expect(placer.place({ nodes: ["d", "a", "c"], labels: { os: "linux" } }, nodes)).toEqual({ kind: "all", nodes: ["c", "d"], down: [], unknown: [] });
  });

  it("lists, for mode all, the unknown names and the selected down nodes apart, in name order", () => {
    const placer = createPlacer(balanced);
    const nodes = [node("n3", { state: "down" }), node("n1"), node("n2", { state: "suspect" }), node("n0", { state: "down" })];
    expect(placer.place({ mode: "all", nodes: ["zz", "n3", "n2", "n1", "n0", "aa", "zz"] }, nodes)).toEqual({
      kind: "all",
      nodes: ["n1", "n2"],
      down: ["n0", "n3"],
      unknown: ["aa", "zz"],
    });
  });

  it("reports every selected node of mode all even when all of them are down", () => {
    const placer = createPlacer({ mode: "all", weights: {} });
    expect(placer.place(undefined, [node("b", { state: "down" }), node("a", { state: "down" })])).toEqual({ kind: "all", nodes: [], down: ["a", "b"], unknown: [] });
  });

  it("ignores unknown names in one-node modes", () => {
    const placer = createPlacer(balanced);
    expect(placer.place({ nodes: ["ghost", "b"] }, [node("a"), node("b")])).toEqual({ kind: "one", node: "b" });
  });

  it("refuses an empty selection with 5000, naming what matched nothing", () => {
    const placer = createPlacer(balanced);
    const nodes = [node("a", { labels: { env: "prod" } })];
    for (const placement of [{ labels: { env: "test" } }, { nodes: ["ghost"] }, { mode: "all" as const, nodes: ["ghost"] }]) {
      const error = refusal(() => placer.place(placement, nodes));
      expect(error.legacyCode).toBe(ErrorCode.NoTargetNode);
      expect(error.kind).toBe("unavailable");
      expect(error.message).toMatch(/^no target node available: no node matches /);
    }
    expect(refusal(() => placer.place({ nodes: ["ghost"] }, nodes)).message).toBe("no target node available: no node matches nodes ghost; unknown: ghost");
    expect(refusal(() => placer.place(undefined, [])).message).toBe("no target node available: the manager has no data node");
  });

  it("never gives a one-node task to a down node, and refuses with 5000 when only down nodes are left", () => {
    const placer = createPlacer({ mode: "round-robin", weights: {} });
    const nodes = [node("a", { state: "down" }), node("b"), node("c", { state: "down" })];
    for (let round = 0; round < 4; round++) expect(placer.place(undefined, nodes)).toEqual({ kind: "one", node: "b" });
    const error = refusal(() => placer.place({ mode: "balanced" }, [node("a", { state: "down" })]));
    expect(error.legacyCode).toBe(ErrorCode.NoTargetNode);
    expect(error.message).toBe("no target node available: every selected node is down");
  });

  it("gives a one-node task to a suspect node only when no up node is left", () => {
    const placer = createPlacer(balanced);
    const nodes = [node("a", { state: "suspect" }), node("b", { usage: { loadavg: 90 } })];
    expect(placer.place(undefined, nodes)).toEqual({ kind: "one", node: "b" });
    expect(placer.place(undefined, [node("a", { state: "suspect" }), node("b", { state: "down" })])).toEqual({ kind: "one", node: "a" });
    // Limits rule out the up node: the suspect one within them is the one left.
    expect(placer.place({ limits: { loadavg: 50 } }, nodes)).toEqual({ kind: "one", node: "a" });
  });

  it("skips the nodes a retry excludes, and says so when none is left", () => {
    const placer = createPlacer(balanced);
    const nodes = [node("a"), node("b", { usage: { loadavg: 5 } })];
    expect(placer.place(undefined, nodes, new Set(["a"]))).toEqual({ kind: "one", node: "b" });
    const error = refusal(() => placer.place(undefined, nodes, new Set(["a", "b"])));
    expect(error.legacyCode).toBe(ErrorCode.NoTargetNode);
    expect(error.message).toBe("no target node available: every selected node that is up already failed to take the task");
  });
});

describe("balanced placement", () => {
  it("chooses the lowest load average by default, ties broken by name", () => {
    const placer = createPlacer(balanced);
    const nodes = [node("c", { usage: { loadavg: 10, cpu: 0 } }), node("b", { usage: { loadavg: 3, cpu: 99 } }), node("a", { usage: { loadavg: 3, cpu: 100 } })];
    expect(placer.place(undefined, nodes)).toEqual({ kind: "one", node: "a" });
  });

  it("scores with the request's weights, else the manager's --weights", () => {
    const nodes = [node("a", { usage: { loadavg: 1, cpu: 80, rram: 10 } }), node("b", { usage: { loadavg: 50, cpu: 10, rram: 10 } }), node("c", { usage: { loadavg: 40, cpu: 40, rram: 0 } })];
    const placer = createPlacer({ mode: "balanced", weights: { cpu: 1 } });
    expect(placer.place(undefined, nodes)).toEqual({ kind: "one", node: "b" });
    // 0.5*cpu + 1*rram: a 50, b 15, c 20.
    expect(placer.place({ weights: { cpu: 0.5, rram: 1 } }, nodes)).toEqual({ kind: "one", node: "b" });
    // 1*loadavg + 1*cpu: a 81, b 60, c 80.
    expect(placer.place({ weights: { loadavg: 1, cpu: 1 } }, nodes)).toEqual({ kind: "one", node: "b" });
    expect(placer.place({ weights: { rram: 1 } }, nodes)).toEqual({ kind: "one", node: "c" });
  });

  it("prefers a node with a free slot, and when none has one takes the least loaded up node", () => {
    const placer = createPlacer(balanced);
    expect(placer.place(undefined, [node("a", { freeSlots: 0 }), node("b", { usage: { loadavg: 70 }, freeSlots: 1 })])).toEqual({ kind: "one", node: "b" });
    expect(placer.place(undefined, [node("a", { freeSlots: 0, usage: { loadavg: 20 } }), node("b", { usage: { loadavg: 10 }, freeSlots: 0 })])).toEqual({ kind: "one", node: "b" });
  });

  it("excludes a node with any figure over its limit, and refuses with 5002 when every candidate is over", () => {
    const placer = createPlacer(balanced);
    const nodes = [node("a", { usage: { loadavg: 1, vram: 95 } }), node("b", { usage: { loadavg: 30, vram: 40 } }), node("c", { usage: { loadavg: 20, vram: 60, cpu: 99 } })];
    expect(placer.place({ limits: { vram: 80 } }, nodes)).toEqual({ kind: "one", node: "c" });
    expect(placer.place({ limits: { vram: 80, cpu: 90 } }, nodes)).toEqual({ kind: "one", node: "b" });
    // A figure exactly at its bound is within it.
    expect(placer.place({ limits: { vram: 40, cpu: 90 } }, nodes)).toEqual({ kind: "one", node: "b" });
    const error = refusal(() => placer.place({ limits: { vram: 30 } }, nodes));
    expect(error.legacyCode).toBe(ErrorCode.LimitsOnEveryNode);
    expect(error.kind).toBe("exhausted");
    expect(error.message).toBe("resource limits exceeded on every candidate node (vram<=30)");
  });

  it("applies limits in round-robin and random modes too", () => {
    const nodes = [node("a", { usage: { cpu: 95 } }), node("b"), node("c", { usage: { cpu: 95 } })];
    const robin = createPlacer({ mode: "round-robin", weights: {} });
    expect([1, 2, 3].map(() => robin.place({ limits: { cpu: 50 } }, nodes))).toEqual([1, 2, 3].map(() => ({ kind: "one", node: "b" })));
    const random = createPlacer({ mode: "random", weights: {} }, () => 0.99);
    expect(random.place({ limits: { cpu: 50 } }, nodes)).toEqual({ kind: "one", node: "b" });
    expect(refusal(() => random.place({ limits: { cpu: 10 } }, nodes.slice(0, 1))).legacyCode).toBe(ErrorCode.LimitsOnEveryNode);
  });
});

describe("round robin and random placement", () => {
  it("takes the next node in name order each time, wrapping, over whatever the selection is", () => {
    const placer = createPlacer({ mode: "round-robin", weights: {} });
    const nodes = [node("c"), node("a"), node("b")];
    const chosen = Array.from({ length: 5 }, () => placer.place(undefined, nodes));
    expect(chosen.map((choice) => (choice.kind === "one" ? choice.node : "?"))).toEqual(["a", "b", "c", "a", "b"]);
    // The cursor stands after b: a smaller selection continues from there.
    expect(placer.place({ nodes: ["a", "b"] }, nodes)).toEqual({ kind: "one", node: "a" });
    expect(placer.place({ nodes: ["a", "c"] }, nodes)).toEqual({ kind: "one", node: "c" });
  });

  it("draws uniformly over the eligible nodes in name order with the given generator", () => {
    const draws = [0, 0.34, 0.67, 0.999, 1];
    const placer = createPlacer({ mode: "random", weights: {} }, () => draws.shift()!);
    const nodes = [node("c"), node("a"), node("b"), node("x", { state: "down" })];
    const chosen = draws.slice().map(() => placer.place(undefined, nodes));
    expect(chosen.map((choice) => (choice.kind === "one" ? choice.node : "?"))).toEqual(["a", "b", "c", "c", "c"]);
  });
});

describe("modes", () => {
  it("takes the manager's mode when the request names none", () => {
    expect(createPlacer({ mode: "all", weights: {} }).place({}, [node("a")])).toEqual({ kind: "all", nodes: ["a"], down: [], unknown: [] });
    expect(createPlacer({ mode: "all", weights: {} }).place({ mode: "balanced" }, [node("a")])).toEqual({ kind: "one", node: "a" });
  });

  it("refuses a mode it does not know with 5001, naming what was asked for", () => {
    const placer = createPlacer(balanced);
    const error = refusal(() => placer.place({ mode: unsupportedMode("legacy route role 3") }, [node("a")]));
    expect(error.legacyCode).toBe(ErrorCode.NodeModeNotSupported);
    expect(error.kind).toBe("invalid");
    expect(error.message).toBe("node mode not supported: legacy route role 3 (expected one of balanced, round-robin, random, all)");
    expect(isPlacementMode("legacy route role 3")).toBe(false);
    expect(refusal(() => createPlacer({ mode: unsupportedMode("sideways"), weights: {} })).legacyCode).toBe(ErrorCode.NodeModeNotSupported);
  });
});

describe("the text forms of weights, selectors and node counts", () => {
  it("parses weights, selectors and counts", () => {
    expect(parseWeights("loadavg=1,cpu=0.5")).toEqual({ loadavg: 1, cpu: 0.5 });
    expect(parseWeights(" rram = 2 ")).toEqual({ rram: 2 });
    expect(parseSelector("env=prod,os=linux")).toEqual({ env: "prod", os: "linux" });
    expect(parseSelector("tier=")).toEqual({ tier: "" });
    expect(parseNodeCount("5")).toEqual({ kind: "count", value: 5 });
    expect(parseNodeCount("20%")).toEqual({ kind: "percent", value: 20 });
    expect(parseNodeCount("100%")).toEqual({ kind: "percent", value: 100 });
  });

  it.each([
    ["", "weights: empty (expected figure=weight, e.g. loadavg=1,cpu=0.5)"],
    ["loadavg", 'weights: "loadavg" is not figure=weight, e.g. loadavg=1,cpu=0.5'],
    ["=1", 'weights: "=1" is not figure=weight, e.g. loadavg=1,cpu=0.5'],
    ["gpu=1", 'weights: unknown usage figure "gpu" (expected one of cpu, iowait, vram, rram, disk, processes, threads, loadavg)'],
    ["cpu=1,cpu=2", 'weights: figure "cpu" is given twice'],
    ["cpu=-1", 'weights: the weight of "cpu" must be a number zero or greater, not "-1"'],
    ["cpu=", 'weights: the weight of "cpu" must be a number zero or greater, not ""'],
    ["cpu=lots", 'weights: the weight of "cpu" must be a number zero or greater, not "lots"'],
    ["cpu=Infinity", 'weights: the weight of "cpu" must be a number zero or greater, not "Infinity"'],
  ])("refuses the weights %j: %s", (text, message) => {
    const error = refusal(() => parseWeights(text));
    expect(error.message).toBe(message);
    expect(error.kind).toBe("invalid");
    expect(error.legacyCode).toBe(ErrorCode.BadInput);
  });

  it.each([
    ["", "selector: empty (expected key=value, e.g. env=prod,os=linux)"],
    ["env", 'selector: "env" is not key=value, e.g. env=prod,os=linux'],
    ["env=prod,", 'selector: "" is not key=value, e.g. env=prod,os=linux'],
    ["env=prod,env=test", 'selector: label "env" is given twice'],
  ])("refuses the selector %j: %s", (text, message) => {
    const error = refusal(() => parseSelector(text));
    expect(error.message).toBe(message);
    expect(error.legacyCode).toBe(ErrorCode.BadInput);
  });

  it.each([
    ["0", 'node count: a number of nodes must be a whole number of at least 1, not "0"'],
    ["0%", 'node count: a percentage must be 1% to 100%, not "0%"'],
    ["101%", 'node count: a percentage must be 1% to 100%, not "101%"'],
    ["-1", 'node count: expected a number of nodes (e.g. 5) or a percentage (e.g. 20%), not "-1"'],
    ["2.5", 'node count: expected a number of nodes (e.g. 5) or a percentage (e.g. 20%), not "2.5"'],
    ["half", 'node count: expected a number of nodes (e.g. 5) or a percentage (e.g. 20%), not "half"'],
    ["", 'node count: expected a number of nodes (e.g. 5) or a percentage (e.g. 20%), not ""'],
  ])("refuses the node count %j: %s", (text, message) => {
    const error = refusal(() => parseNodeCount(text));
    expect(error.message).toBe(message);
    expect(error.legacyCode).toBe(ErrorCode.BadInput);
  });

  it("resolves a percentage of the nodes rounded up, and any count to at least one", () => {
    expect(resolveNodeCount({ kind: "percent", value: 20 }, 12)).toBe(3);
    expect(resolveNodeCount({ kind: "percent", value: 50 }, 4)).toBe(2);
    expect(resolveNodeCount({ kind: "percent", value: 1 }, 3)).toBe(1);
    expect(resolveNodeCount({ kind: "percent", value: 10 }, 0)).toBe(1);
    expect(resolveNodeCount({ kind: "count", value: 7 }, 3)).toBe(7);
  });
});
