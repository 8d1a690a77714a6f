import { createClient, Code, ConnectError, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterService } from "../../gen/drce/v1/cluster_service_pb.js";
import { ClusterNodeState, NodeService } from "../../gen/drce/v1/node_service_pb.js";
import { PlacementMode } from "../../gen/drce/v1/task_pb.js";
import { createDirectTransport, deliveryOf } from "../../src/cluster/fleet-transport.js";
import { ConfigError, parseServeConfig } from "../../src/config.js";
import { freePort } from "../helpers/cluster.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * ClusterService and membership over real servers in this process: a manager with a cluster
 * token, a data node that joins it, and one it polls.
 */

const token = "cluster-secret";
let manager: TestNode;
let joined: TestNode;
let listed: TestNode;
let poller: TestNode;

function clientOf<S extends typeof ClusterService | typeof NodeService>(service: S, url: string, bearer = token): Client<S> {
  return createClient(service, createConnectTransport({ baseUrl: url, httpVersion: "2", interceptors: bearer === "" ? [] : [(next) => (request) => {
    request.header.set("Authorization", `Bearer ${bearer}`);
    return next(request);
  }] }));
}

async function codeOf(call: Promise<unknown>): Promise<Code> {
  return call.then(
    () => {
      throw new Error("the call succeeded");
    },
    (reason: unknown) => ConnectError.from(reason).code,
  );
}

beforeAll(async () => {
  manager = await startNode({ role: "manager", name: "manager", token, heartbeatMs: 200 });
  joined = await startNode({ name: "joiner-1", token, join: manager.url, heartbeatMs: 200, labels: [["rack", "r7"]] });
  listed = await startNode({ name: "listed-1", token, labels: [["rack", "r9"]] });
  poller = await startNode({ role: "manager", name: "poller", token, heartbeatMs: 200, nodes: [listed.url] });
}, 60_000);

afterAll(async () => {
  await Promise.all([joined, listed].map((node) => node?.stop()));
  await Promise.all([manager, poller].map((node) => node?.stop()));
});

describe("a data node joining a manager", () => {
  it("registers with the cluster token, then keeps itself up with heartbeats", async () => {
    const nodes = clientOf(NodeService, manager.url);
    const listedNodes = await until(async () => (await nodes.listNodes({})).nodes, (list) => list.some((node) => node.name === "joiner-1" && node.state === ClusterNodeState.UP), 20_000, "the node to join");
    const node = listedNodes.find((item) => item.name === "joiner-1")!;
    expect(node).toMatchObject({ url: joined.url, joined: true, labels: { rack: "r7" } });
    expect(node.facts?.drceVersion).not.toBe("");
    const seen = node.lastSeenMs;
    await until(async () => (await nodes.listNodes({})).nodes.find((item) => item.name === "joiner-1")!.lastSeenMs, (at) => at > seen, 5000, "a heartbeat");
  });

  it("runs a task placed through the manager on the joined node", async () => {
    const tasks = manager.client;
    const { result } = await tasks.submitTask({ task: { command: "echo joined", placement: { mode: PlacementMode.ALL, labels: { rack: "r7" } } } }, { headers: { authorization: `Bearer ${token}` } });
    expect(result?.nodes.map((item) => [item.node, Buffer.from(item.result!.stdout).toString()])).toEqual([["joiner-1", "joined\n"]]);
  });

  it("refuses a registration without the token, a malformed name or URL, a name held by another node that is up, and a heartbeat of an unknown node", async () => {
    const anonymous = clientOf(ClusterService, manager.url, "");
    expect(await codeOf(anonymous.registerNode({ name: "intruder", url: "http://127.0.0.1:1" }))).toBe(Code.Unauthenticated);
    const cluster = clientOf(ClusterService, manager.url);
    expect(await codeOf(cluster.registerNode({ name: "bad name!", url: "http://127.0.0.1:1" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(cluster.registerNode({ name: "ok-name", url: "ftp://127.0.0.1:1" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(cluster.registerNode({ name: "ok-name", url: "http://127.0.0.1:1/drce" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(cluster.registerNode({ name: "joiner-1", url: "http://127.0.0.1:1" }))).toBe(Code.AlreadyExists);
    expect(await codeOf(cluster.heartbeat({ name: "never-joined" }))).toBe(Code.NotFound);
  });

  it("answers ClusterService on a data node with FailedPrecondition", async () => {
    const onNode = clientOf(ClusterService, listed.url);
    expect(await codeOf(onNode.registerNode({ name: "x", url: "http://127.0.0.1:1" }))).toBe(Code.FailedPrecondition);
    expect(await codeOf(onNode.heartbeat({ name: "x" }))).toBe(Code.FailedPrecondition);
  });
});

describe("a joined node whose manager forgot it", () => {
  it("registers again when a new manager on the same address answers its heartbeat with NotFound", { timeout: 60_000 }, async () => {
    const port = await freePort();
    const first = await startNode({ role: "manager", name: "first", token, heartbeatMs: 200, listen: `127.0.0.1:${port}` });
    const node = await startNode({ name: "rejoiner", token, join: first.url, heartbeatMs: 200 });
    try {
      const up = async (url: string) => (await clientOf(NodeService, url).listNodes({})).nodes.some((item) => item.name === "rejoiner" && item.state === ClusterNodeState.UP);
      await until(() => up(first.url), Boolean, 20_000, "the node to join the first manager");
      await first.stop();
      // A fresh data directory: this manager has never heard of the node.
      const second = await startNode({ role: "manager", name: "second", token, heartbeatMs: 200, listen: `127.0.0.1:${port}` });
      try {
        await until(() => up(second.url), Boolean, 20_000, "the node to register with the second manager");
      } finally {
        await second.stop();
      }
    } finally {
      await node.stop();
    }
  });
});

describe("a joined node restarted at another address", () => {
  it("takes its name back at once: the old address no longer answers as that node", { timeout: 60_000 }, async () => {
    // Beats every 30 s: the old entry would stay up for a minute, longer than this test waits.
    const slow = await startNode({ role: "manager", name: "slow", token, heartbeatMs: 30_000 });
    try {
      const entry = async () => (await clientOf(NodeService, slow.url).listNodes({})).nodes.find((item) => item.name === "mover");
      const first = await startNode({ name: "mover", token, join: slow.url, heartbeatMs: 200 });
      await until(entry, (item) => item?.url === first.url && item.state === ClusterNodeState.UP, 20_000, "the node to join");
      await first.stop();
      const second = await startNode({ name: "mover", token, join: slow.url, heartbeatMs: 200 });
      try {
        const moved = await until(entry, (item) => item?.url === second.url, 20_000, "the restarted node to hold its name at its new address");
        expect(moved?.state).toBe(ClusterNodeState.UP);
        // A third node claiming the name while the second answers as itself is still refused.
        expect(await codeOf(clientOf(ClusterService, slow.url).registerNode({ name: "mover", url: "http://127.0.0.1:1" }))).toBe(Code.AlreadyExists);
      } finally {
        await second.stop();
      }
    } finally {
      await slow.stop();
    }
  });
});

describe("a data node listed with --node", () => {
  it("is polled: named by its GetNodeInfo, with its labels and facts, not joined", async () => {
    const nodes = clientOf(NodeService, poller.url);
    const list = await until(async () => (await nodes.listNodes({})).nodes, (items) => items.some((node) => node.state === ClusterNodeState.UP && node.facts !== undefined), 20_000, "the listed node to be polled");
    expect(list.map((node) => [node.name, node.url, node.joined, node.labels["rack"]])).toEqual([["listed-1", listed.url, false, "r9"]]);
  });
});

describe("the fleet transport", () => {
  it("tells a request never delivered (nothing listens) from one the node answered", async () => {
    const transport = createDirectTransport({ token });
    try {
      const port = await freePort();
      const refused = await transport.tasks({ name: "gone", url: `http://127.0.0.1:${port}` }).getTask({ task: "1" }).catch((error: unknown) => error);
      expect(deliveryOf(refused)).toBe("not-delivered");
      const answered = await transport.tasks({ name: "listed-1", url: listed.url }).getTask({ task: "no-such" }).catch((error: unknown) => error);
      expect(ConnectError.from(answered).code).toBe(Code.NotFound);
      expect(deliveryOf(answered)).toBe("answered");
      expect(deliveryOf(new ConnectError("stream reset", Code.Unavailable))).toBe("unknown");
    } finally {
      transport.close();
    }
  });
});

describe("the cluster flags of drce serve", () => {
  it("refuses --join on a manager, --node on a data node, an unknown --mode and malformed --weights or --label", () => {
    expect(() => parseServeConfig(["--role", "manager", "--join", "http://127.0.0.1:8470"], {})).toThrow(ConfigError);
    expect(() => parseServeConfig(["--node", "http://127.0.0.1:8471"], {})).toThrow(/--node lists the data nodes of a manager/);
    expect(() => parseServeConfig(["--role", "boss"], {})).toThrow(/--role must be data or manager/);
    expect(() => parseServeConfig(["--role", "manager", "--mode", "fastest"], {})).toThrow(/--mode must be balanced, round-robin, random or all/);
    expect(() => parseServeConfig(["--role", "manager", "--weights", "speed=1"], {})).toThrow(/--weights: .*unknown usage figure "speed"/);
    expect(() => parseServeConfig(["--label", "novalue"], {})).toThrow(/--label must be key=value/);
    expect(() => parseServeConfig(["--join", "http://127.0.0.1:8470/drce"], {})).toThrow(/has no path/);
  });

  it("takes the cluster flags, with the node timeout defaulting to three heartbeats", () => {
    const config = parseServeConfig(["--role", "manager", "--node", "http://10.0.0.5:8470/", "--node", "http://10.0.0.6:8470", "--mode", "round-robin", "--weights", "loadavg=1,cpu=0.5", "--heartbeat-ms", "1000", "--token", "t", "--listen", "127.0.0.1:0"], {});
    expect(config).toMatchObject({ role: "manager", nodes: ["http://10.0.0.5:8470", "http://10.0.0.6:8470"], mode: "round-robin", weights: { loadavg: 1, cpu: 0.5 }, heartbeatMs: 1000, nodeTimeoutMs: 0 });
    const node = parseServeConfig(["--join", "http://10.0.0.1:8470", "--label", "env=prod", "--label", "os=linux", "--advertise-url", "http://10.0.0.7:8470"], {});
    expect(node).toMatchObject({ role: "data", join: "http://10.0.0.1:8470", labels: [["env", "prod"], ["os", "linux"]], advertiseUrl: "http://10.0.0.7:8470", heartbeatMs: 5000 });
  });
});
