import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { runExample, tsExampleArgs } from "./run-example.js";

/*
 * The fan-out example against a real manager and three real data nodes (separate processes):
 * every targeted node's lines come prefixed by its name, each node's end is reported, and the
 * exit code says whether every node's command exited 0.
 */

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster({ nodes: [{ name: "ex-a", labels: { env: "prod" } }, { name: "ex-b", labels: { env: "prod" } }, { name: "ex-c", labels: { env: "dev" } }] });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

const fanOut = (args: readonly string[]) => runExample(process.execPath, [...tsExampleArgs, "examples/typescript/fan-out.ts", ...args], { DRCE_SERVER: cluster.url });

describe("fan-out.ts, against a manager and three nodes", { timeout: 90_000 }, () => {
  it("runs the command on every node, each line prefixed by its node, and exits 0", async () => {
    const result = await fanOut(["--", "sh", "-c", "printf 'one\\ntwo'"]);
    expect(result.stdout.split("\n").filter((line) => line !== "").sort()).toEqual(["ex-a | one", "ex-a | two", "ex-b | one", "ex-b | two", "ex-c | one", "ex-c | two"]);
    expect(result.stderr.split("\n").filter((line) => line !== "").sort()).toEqual(["ex-a: FINISHED exit=0", "ex-b: FINISHED exit=0", "ex-c: FINISHED exit=0"]);
    expect(result.code).toBe(0);
  });

  it("runs only on the nodes carrying the labels, and exits 1 when a node's command failed", async () => {
    const result = await fanOut(["env=prod", "--", "sh", "-c", "echo on; exit 3"]);
    expect(result.stdout.split("\n").filter((line) => line !== "").sort()).toEqual(["ex-a | on", "ex-b | on"]);
    expect(result.stderr.split("\n").filter((line) => line !== "").sort()).toEqual(["ex-a: FINISHED exit=3", "ex-b: FINISHED exit=3"]);
    expect(result.code).toBe(1);
  });

  it("reports the manager's refusal of an empty selection with its codes and exits 125", async () => {
    const result = await fanOut(["env=nowhere", "--", "true"]);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/^drce: Unavailable: .+ \(legacy error 5000\)\n$/);
    expect(result.code).toBe(125);
  });
});
