import { describe, expect, it } from "vitest";
import { createPlacer } from "../../src/cluster/placement.js";
import { DrceError, ErrorCode } from "../../src/domain/errors.js";
import { decodeLegacyRoute, legacyRouteRoles } from "../../src/gateway/legacy-route.js";

function refusal(run: () => unknown): DrceError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(DrceError);
    return error as DrceError;
  }
  throw new Error("the route was not refused");
}

const idle = { cpu: 0, iowait: 0, vram: 0, rram: 0, disk: 0, processes: 0, threads: 0, loadavg: 0 };

describe("the legacy route", () => {
  it("maps each original role onto its placement mode", () => {
    expect(legacyRouteRoles).toEqual({ 0: "all", 1: "round-robin", 4: "random", 5: "balanced" });
    for (const [role, mode] of Object.entries(legacyRouteRoles)) {
      expect(decodeLegacyRoute({ frame: `{"role":${role}}` })).toEqual({ mode });
    }
    expect(decodeLegacyRoute({ frame: '{"role":"5"}' })).toEqual({ mode: "balanced" });
  });

  it("reads the route the resource usage test sends: role 5, weights and limits in the balancing string's order", () => {
    const frame = '{"role":5,"nodes":[],"alg":-1,"alg_weight":"1.0,0.5,0,0,0,0,0,2","limits":"90.0,0,0,0,95.5,0,0,0"}';
    expect(decodeLegacyRoute({ frame })).toEqual({ mode: "balanced", weights: { cpu: 1, iowait: 0.5, vram: 0, rram: 0, disk: 0, processes: 0, threads: 0, loadavg: 2 }, limits: { cpu: 90, disk: 95.5 } });
  });

  it("takes weights all zero as none and limits of zero as no bound, as the original test's 0.0 lists mean", () => {
    const frame = '{"role":5,"nodes":[],"alg":0,"alg_weight":"0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0","limits":"0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0"}';
    expect(decodeLegacyRoute({ frame })).toEqual({ mode: "balanced" });
  });

  it("reads node names from an array or a comma-separated string, dropping the empty name the route test sends for every node", () => {
    expect(decodeLegacyRoute({ frame: '{"role":0,"nodes":["n011_data","n012_data","n013_data"]}' })).toEqual({ mode: "all", nodes: ["n011_data", "n012_data", "n013_data"] });
    expect(decodeLegacyRoute({ frame: '{"role":0,"nodes":[""]}' })).toEqual({ mode: "all" });
    expect(decodeLegacyRoute({ field: { role: 1, nodes: "a, b,," } })).toEqual({ mode: "round-robin", nodes: ["a", "b"] });
  });

  it("ignores the Python client's task_type, and a route of task_type alone names no mode", () => {
    expect(decodeLegacyRoute({ frame: '{"role":4,"task_type":2}' })).toEqual({ mode: "random" });
    expect(decodeLegacyRoute({ frame: '{"task_type":2}' })).toEqual({});
  });

  it("prefers the frame to the field, and turns a positive cover ttl into the gather time", () => {
    expect(decodeLegacyRoute({ frame: '{"role":0}', field: { role: 5 }, coverTtlMs: 3000 })).toEqual({ mode: "all", gatherTimeoutMs: 3000 });
    expect(decodeLegacyRoute({ field: '{"role":1}' })).toEqual({ mode: "round-robin" });
    expect(decodeLegacyRoute({ coverTtlMs: 1500 })).toEqual({ gatherTimeoutMs: 1500 });
    expect(decodeLegacyRoute({ frame: "", coverTtlMs: 0 })).toBeUndefined();
    expect(decodeLegacyRoute({ frame: "  ", field: "" })).toBeUndefined();
    expect(decodeLegacyRoute({})).toBeUndefined();
  });

  it.each([-1, 2, 3, 6, 7, 1.5, "five", true])("carries role %j through as a mode the placer refuses with 5001", (role) => {
    const placement = decodeLegacyRoute({ frame: JSON.stringify({ role }) });
    const error = refusal(() => createPlacer({ mode: "balanced", weights: {} }).place(placement, [{ name: "a", labels: {}, state: "up", usage: idle, freeSlots: 1 }]));
    expect(error.legacyCode).toBe(ErrorCode.NodeModeNotSupported);
    expect(error.message).toBe(`node mode not supported: legacy route role ${JSON.stringify(role)} (expected one of balanced, round-robin, random, all)`);
  });

  it.each([
    ["{role:5}", "the route is not valid JSON"],
    ['{"role":5', "the route is not valid JSON"],
    ["[5]", "the route is not a JSON object"],
    ["5", "the route is not a JSON object"],
  ])("refuses the route frame %j with error 1, as the gateway refuses a body that is not JSON: %s", (frame, message) => {
    const error = refusal(() => decodeLegacyRoute({ frame }));
    expect(error.legacyCode).toBe(ErrorCode.Parse);
    expect(error.message).toBe(message);
    expect(error.kind).toBe("invalid");
  });

  it("refuses a frame that is not UTF-8, and a route field that is neither an object nor its JSON text, with error 1", () => {
    expect(refusal(() => decodeLegacyRoute({ frame: new Uint8Array([0x7b, 0xff, 0x7d]) })).message).toBe("the route is not valid UTF-8");
    expect(refusal(() => decodeLegacyRoute({ field: 5 })).legacyCode).toBe(ErrorCode.Parse);
    expect(refusal(() => decodeLegacyRoute({ field: "{nope" })).message).toBe("the route is not valid JSON");
  });

  it.each([
    ['{"nodes":5}', "route.nodes must be an array of node names"],
    ['{"nodes":["a",7]}', "route.nodes[1] must be a node name (a string)"],
    ['{"alg":"fast"}', 'route.alg must be an integer, not "fast"'],
    ['{"alg":0.5}', "route.alg must be an integer, not 0.5"],
    ['{"alg_weight":"1,x"}', 'route.alg_weight: the iowait value must be a number zero or greater, not "x"'],
    ['{"alg_weight":"1,,1"}', 'route.alg_weight: the iowait value must be a number zero or greater, not ""'],
    ['{"limits":"-1"}', 'route.limits: the cpu value must be a number zero or greater, not "-1"'],
    ['{"limits":"1,1,1,1,1,1,1,1,1"}', "route.limits has 9 values; at most 8 (cpu,iowait,vram,rram,disk,processes,threads,loadavg)"],
    ['{"limits":{"cpu":1}}', "route.limits must be a comma-separated list of numbers (cpu,iowait,vram,rram,disk,processes,threads,loadavg)"],
  ])("refuses the malformed route %s with error 103: %s", (frame, message) => {
    const error = refusal(() => decodeLegacyRoute({ frame }));
    expect(error.legacyCode).toBe(ErrorCode.BadInput);
    expect(error.message).toBe(message);
  });

  it("takes PHP's empty array or object as no nodes, weights or limits", () => {
    expect(decodeLegacyRoute({ frame: '{"role":0,"nodes":[],"alg":1,"alg_weight":[],"limits":[],"task_type":0}' })).toEqual({ mode: "all" });
    expect(decodeLegacyRoute({ frame: '{"role":5,"nodes":{},"alg_weight":{},"limits":{}}' })).toEqual({ mode: "balanced" });
  });

  it("reads weights and limits given as arrays of numbers too", () => {
    expect(decodeLegacyRoute({ field: { role: 5, alg_weight: [0, 0, 0, 0, 0, 0, 0, 1], limits: [50] } })).toEqual({
      mode: "balanced",
      weights: { cpu: 0, iowait: 0, vram: 0, rram: 0, disk: 0, processes: 0, threads: 0, loadavg: 1 },
      limits: { cpu: 50 },
    });
  });
});
