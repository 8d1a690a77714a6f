import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNodeSchema, ClusterNodeState, ListNodesResponseSchema, NodeService, type ListNodesRequest } from "../../gen/drce/v1/node_service_pb.js";
import { runDrce } from "../helpers/cli.js";
import { startNode, type TestNode } from "../helpers/node.js";
import { startScriptedServer, type ScriptedServer } from "../helpers/scripted-server.js";

/*
 * `drce nodes` as a user runs it: against a real data node (which answers with itself) and
 * against a real Connect server answering ListNodes as a manager of three nodes would.
 */

let node: TestNode;
let manager: ScriptedServer;
let lastRequest: ListNodesRequest | undefined;

const cluster = [
  create(ClusterNodeSchema, {
    name: "alpha",
    url: "http://10.0.0.1:8470",
    state: ClusterNodeState.UP,
    labels: { os: "linux", env: "prod" },
    usage: { loadavg: 12.5, cpu: 3 },
    freeSlots: 14,
    running: 2,
    facts: { osName: "Debian GNU/Linux", osRelease: "12", kernel: "6.1.0-18-amd64", cpuCount: 8, memoryBytes: 16n * 1024n ** 3n },
  }),
  create(ClusterNodeSchema, {
    name: "b",
    url: "http://10.0.0.2:8470",
    state: ClusterNodeState.SUSPECT,
    labels: {},
    usage: { loadavg: 100 },
    freeSlots: 0,
    running: 16,
    facts: { osName: "Ubuntu", osRelease: "24.04", kernel: "6.8.0", cpuCount: 2, memoryBytes: 1536n * 1024n ** 2n },
  }),
  create(ClusterNodeSchema, { name: "gamma-7", url: "http://10.0.0.3:8470", state: ClusterNodeState.DOWN }),
];

beforeAll(async () => {
  node = await startNode({ name: "solo" });
  manager = await startScriptedServer((router) =>
    router.service(NodeService, {
      async listNodes(request) {
        lastRequest = request;
        const wanted = Object.entries(request.labels);
        return create(ListNodesResponseSchema, { nodes: cluster.filter((n) => wanted.every(([key, value]) => n.labels[key] === value)) });
      },
    }),
  );
});

afterAll(async () => {
  await manager.close();
  await node.stop();
});

describe("drce nodes", () => {
  it("lists a manager's nodes as a table: state, load, free slots, running, labels and facts", async () => {
    const outcome = await runDrce(manager.url, ["nodes"]);
    expect(outcome).toEqual({
      code: 0,
      stderr: "",
      stdout: [
        "NAME     STATE    LOAD   FREE  RUNNING  LABELS             KERNEL          CPUS  MEMORY  OS",
        "alpha    up       12.5%  14    2        env=prod,os=linux  6.1.0-18-amd64  8     16GiB   Debian GNU/Linux 12",
        "b        suspect  100%   0     16       -                  6.8.0           2     1.5GiB  Ubuntu 24.04",
        "gamma-7  down     -      0     0        -                  -               -     -       -",
        "",
      ].join("\n"),
    });
    expect(lastRequest?.labels).toEqual({});
  });

  it("filters by labels with --target and prints one ClusterNode per line with --json", async () => {
    const outcome = await runDrce(manager.url, ["nodes", "--target", "env=prod", "--json"]);
    expect(outcome.code).toBe(0);
    expect(lastRequest?.labels).toEqual({ env: "prod" });
    const lines = outcome.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? "")).toMatchObject({ name: "alpha", state: "CLUSTER_NODE_STATE_UP", labels: { os: "linux", env: "prod" }, freeSlots: 14 });
  });

  it("says so on stderr when no node carries the labels, and exits 0", async () => {
    const outcome = await runDrce(manager.url, ["nodes", "--target", "env=none"]);
    expect(outcome).toEqual({ code: 0, stdout: "NAME  STATE  LOAD  FREE  RUNNING  LABELS  KERNEL  CPUS  MEMORY  OS\n", stderr: "drce: no node carries these labels\n" });
  });

  it("shows a data node as the one node it answers for", async () => {
    const outcome = await runDrce(node.url, ["nodes"]);
    expect(outcome.code).toBe(0);
    const [header, row, ...rest] = outcome.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^NAME\s+STATE\s+LOAD\s+FREE\s+RUNNING\s+LABELS\s+KERNEL\s+CPUS\s+MEMORY\s+OS$/);
    expect(rest).toEqual([]);
    expect(row).toMatch(/^solo\s+up\s+\d+(\.\d)?%\s+\d+\s+0\s+-\s+\S+\s+\d+\s+[\d.]+[KMGT]iB\s+\S/);
    const json = await runDrce(node.url, ["nodes", "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ name: "solo", state: "CLUSTER_NODE_STATE_UP" });
  });

  it.each([
    [["nodes", "extra"], /unexpected argument: extra/],
    [["nodes", "--target", "env"], /--target "env"/],
    [["nodes", "--bogus"], /Unknown option '--bogus'/],
  ])("refuses %j as a usage error", async (args, message) => {
    const outcome = await runDrce(manager.url, args);
    expect(outcome.code).toBe(2);
    expect(outcome.stderr).toMatch(message);
    expect(outcome.stderr).toContain("Try 'drce help nodes'");
  });
});
