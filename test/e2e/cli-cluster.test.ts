import { spawn } from "node:child_process";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNodeState, NodeService } from "../../gen/drce/v1/node_service_pb.js";
import { TaskState } from "../../gen/drce/v1/task_pb.js";
import { drceBin, runDrce } from "../helpers/cli.js";
import { until } from "../helpers/node.js";
import { spawnNodeProcess, type NodeProcess } from "../helpers/node-process.js";

/*
 * The fleet CLI as a user runs it: three data nodes and a manager listing them, each a
 * `drce serve` process on loopback, and `drce nodes`, `drce run --all | --nodes | --target`,
 * `drce submit`, `status` and `fetch` against the manager, asserting what they print and
 * their exit codes, and on the nodes what became of the tasks.
 */

let nodes: NodeProcess[] = [];
let manager: NodeProcess;

/** The lines of a text, without the last empty one. */
const lines = (text: string): string[] => text.split("\n").filter((line, i, all) => line !== "" || i < all.length - 1);

beforeAll(async () => {
  const labels = { n1: "prod", n2: "prod", n3: "dev" } as const;
  nodes = await Promise.all((["n1", "n2", "n3"] as const).map((name) => spawnNodeProcess(["--name", name, "--label", `env=${labels[name]}`])));
  manager = await spawnNodeProcess(["--role", "manager", "--name", "manager", "--heartbeat-ms", "300", ...nodes.flatMap((node) => ["--node", node.url])]);
  const client = createClient(NodeService, createConnectTransport({ baseUrl: manager.url, httpVersion: "2" }));
  await until(
    async () => (await client.listNodes({})).nodes.filter((node) => node.state === ClusterNodeState.UP).length,
    (up) => up === 3,
    30_000,
    "three nodes up at the manager",
  );
}, 120_000);

afterAll(async () => {
  await manager?.stop();
  await Promise.all(nodes.map((node) => node.stop()));
});

describe("the fleet CLI against a manager and three nodes", { timeout: 60_000 }, () => {
  it("drce nodes lists the three nodes, up, with their labels; --target keeps the matching ones", async () => {
    const all = await runDrce(manager.url, ["nodes"]);
    expect(all.code).toBe(0);
    const rows = lines(all.stdout);
    expect(rows[0]).toMatch(/^NAME\s+STATE\s+LOAD\s+FREE\s+RUNNING\s+LABELS\s+KERNEL\s+CPUS\s+MEMORY\s+OS$/);
    expect(rows.slice(1).map((row) => row.split(/\s+/).slice(0, 2).concat(row.split(/\s+/)[5] ?? ""))).toEqual([
      ["n1", "up", "env=prod"],
      ["n2", "up", "env=prod"],
      ["n3", "up", "env=dev"],
    ]);
    const prod = await runDrce(manager.url, ["nodes", "--target", "env=prod", "--json"]);
    expect(lines(prod.stdout).map((line) => (JSON.parse(line) as { name: string }).name)).toEqual(["n1", "n2"]);
  });

  it("drce run --all writes every node's lines prefixed, stdout and stderr apart, sums up, and exits 0", async () => {
    const outcome = await runDrce(manager.url, ["run", "--all", "--", "sh", "-c", "echo out; echo err >&2; printf tail"]);
    expect(outcome.code).toBe(0);
    const out = lines(outcome.stdout);
    expect([...out].sort()).toEqual(["n1 | out", "n1 | tail", "n2 | out", "n2 | tail", "n3 | out", "n3 | tail"]);
    // Each node's lines in the order it wrote them.
    for (const name of ["n1", "n2", "n3"]) expect(out.indexOf(`${name} | out`)).toBeLessThan(out.indexOf(`${name} | tail`));
    const err = lines(outcome.stderr);
    expect(err.slice(0, 3).sort()).toEqual(["n1 | err", "n2 | err", "n3 | err"]);
    expect(err[3]).toMatch(/^NODE\s+STATUS\s+EXIT\s+TIME$/);
    expect(err.slice(4).map((row) => row.split(/\s+/).slice(0, 3))).toEqual([
      ["n1", "finished", "0"],
      ["n2", "finished", "0"],
      ["n3", "finished", "0"],
    ]);
  });

  it("drce run --target runs on the labelled nodes only and exits with the first failing node's status", async () => {
    const outcome = await runDrce(manager.url, ["run", "--target", "env=prod", "--", "sh", "-c", "echo here; exit 3"]);
    expect(outcome.code).toBe(3);
    expect([...lines(outcome.stdout)].sort()).toEqual(["n1 | here", "n2 | here"]);
    expect(lines(outcome.stderr).slice(1).map((row) => row.split(/\s+/).slice(0, 3))).toEqual([
      ["n1", "finished", "3"],
      ["n2", "finished", "3"],
    ]);
  });

  it("drce run --nodes with --max-concurrency 1 runs on the named nodes, one at a time", async () => {
    // Each node prints when it started and ended (one clock: one machine); one at a time means no overlap.
    const outcome = await runDrce(manager.url, ["run", "--nodes", "n1,n3", "--max-concurrency", "1", "--", "sh", "-c", "date +%s%N; sleep 0.3; date +%s%N"]);
    expect(outcome.code).toBe(0);
    const out = lines(outcome.stdout);
    const spans = ["n1", "n3"].map((name) => out.filter((line) => line.startsWith(`${name} | `)).map((line) => BigInt(line.slice(`${name} | `.length))));
    expect(spans.map((span) => span.length)).toEqual([2, 2]);
    const [first, second] = [...spans].sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
    expect(first![1]! <= second![0]!).toBe(true);
  });

  it("drce run without a target runs on one node and feels exactly like a node", async () => {
    expect(await runDrce(manager.url, ["run", "--", "sh", "-c", "echo single; echo e >&2; exit 4"])).toEqual({ code: 4, stdout: "single\n", stderr: "e\n" });
  });

  it("drce submit --all, status and fetch show the task node by node", async () => {
    const id = `fan-${process.pid}`;
    const submitted = await runDrce(manager.url, ["submit", "--all", "--id", id, "--", "sh", "-c", "echo hi; exit 2"]);
    expect(submitted.code).toBe(0);
    const [first, ...perNode] = lines(submitted.stdout);
    expect(first).toMatch(new RegExp(`^${id}\\t`));
    expect(perNode.map((line) => line.split("\t")[0])).toEqual(["n1", "n2", "n3"]);
    await until(
      async () => (await runDrce(manager.url, ["status", id])).stdout,
      (text) => (text.match(/^node:n\d\s+finished exit=2 /gm) ?? []).length === 3,
      30_000,
      "every node's part finished",
    );
    const fetched = await runDrce(manager.url, ["fetch", id]);
    expect(fetched.code).toBe(2);
    expect([...lines(fetched.stdout)].sort()).toEqual(["n1 | hi", "n2 | hi", "n3 | hi"]);
    expect(lines(fetched.stderr).slice(1).map((row) => row.split(/\s+/).slice(0, 3))).toEqual([
      ["n1", "finished", "2"],
      ["n2", "finished", "2"],
      ["n3", "finished", "2"],
    ]);
  });

  it("Ctrl-C on drce run --all terminates the task on every node and exits 130", async () => {
    const id = `int-${process.pid}`;
    const child = spawn(process.execPath, [drceBin, "--server", manager.url, "run", "--all", "--id", id, "--", "sh", "-c", "echo started; sleep 60"], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
    child.stderr.resume();
    const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
    await until(() => stdout, (text) => (text.match(/ \| started$/gm) ?? []).length === 3, 30_000, "every node's first line");
    child.kill("SIGINT");
    expect(await closed).toBe(130);
    for (const node of nodes) {
      await until(async () => (await node.client.getTask({ task: id })).result?.state, (state) => state === TaskState.TERMINATED, 20_000, `the task terminated on ${node.url}`);
    }
  }, 90_000);

  it("reports a node killed with SIGKILL as unreachable, and exits 125", async () => {
    const victim = nodes[2]!;
    victim.proc.kill("SIGKILL");
    await new Promise((resolve) => victim.proc.once("exit", resolve));
    const outcome = await runDrce(manager.url, ["run", "--all", "--", "echo", "up"]);
    expect(outcome.code).toBe(125);
    expect([...lines(outcome.stdout)].sort()).toEqual(["n1 | up", "n2 | up"]);
    const rows = lines(outcome.stderr);
    expect(rows[0]).toMatch(/^NODE\s+STATUS\s+EXIT\s+TIME\s+ERROR$/);
    expect(rows[3]).toMatch(/^n3\s+unreachable\s+-\s+-\s+node n3 .*unreachable/);
  }, 60_000);
});
