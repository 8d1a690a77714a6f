import { Code, ConnectError } from "@connectrpc/connect";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNodeState } from "../../gen/drce/v1/node_service_pb.js";
import { NodeRunStatus, PlacementMode, TaskMode, TaskState } from "../../gen/drce/v1/task_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { TaskSpecSchema } from "../../gen/drce/v1/task_pb.js";
import { ErrorCode } from "../../src/domain/errors.js";
import { taskSpec } from "../../src/domain/task.js";
import type { LegacyResultItem } from "../../src/gateway/legacy-codec.js";
import { encodeSetRequest } from "../gateway/legacy-request-encoder.js";
import { startCluster, until, type TestCluster } from "../helpers/cluster.js";

/*
 * A manager and five data nodes, each its own `drce serve` process on loopback, the nodes
 * joined with labels: n1 and n2 env=prod, n3 to n5 env=dev. One cluster serves every test.
 */

const names = ["n1", "n2", "n3", "n4", "n5"];
let cluster: TestCluster;

beforeAll(async () => {
  // A heartbeat of a second: on a loaded machine a 300 ms one can be late by a whole interval,
  // which makes a node suspect and changes which nodes the one-node modes may choose.
  cluster = await startCluster({ heartbeatMs: 1000, nodes: names.map((name, i) => ({ name, labels: { env: i < 2 ? "prod" : "dev", os: "linux" } })) });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

type Spec = MessageInitShape<typeof TaskSpecSchema>;

/** The names of the nodes whose own task list holds the id. */
async function holders(id: string): Promise<string[]> {
  const held: string[] = [];
  for (const member of cluster.members.values()) {
    const tasks = (await member.tasks.listTasks({})).tasks;
    if (tasks.some((task) => task.id === id)) held.push(member.name);
  }
  return held.sort();
}

/** The failure of a call: its Connect code and the legacy code in its metadata. */
async function failure(call: Promise<unknown>): Promise<{ code: Code; legacy: number; message: string }> {
  const error = await call.then(
    () => undefined,
    (reason: unknown) => ConnectError.from(reason),
  );
  if (error === undefined) throw new Error("the call succeeded");
  return { code: error.code, legacy: Number(error.metadata.get("drce-error-code")), message: error.rawMessage };
}

/** A legacy set request with a route, POSTed to the manager's /drce as the original HTTP clients send it. */
async function legacySet(id: string, route: unknown): Promise<LegacyResultItem[]> {
  const body = { ...encodeSetRequest(taskSpec({ id, command: "echo legacy" })), route };
  const res = await fetch(`${cluster.url}/drce`, { method: "POST", body: JSON.stringify(body) });
  expect(res.status).toBe(200);
  return (await res.json()) as LegacyResultItem[];
}

describe("a manager in front of five data nodes", { timeout: 60_000 }, () => {
  it("lists every node up, with its labels, free slots and host facts", async () => {
    const listed = (await cluster.nodes.listNodes({})).nodes;
    expect(listed.map((node) => [node.name, node.state, node.labels["env"], node.joined])).toEqual([
      ["n1", ClusterNodeState.UP, "prod", true],
      ["n2", ClusterNodeState.UP, "prod", true],
      ["n3", ClusterNodeState.UP, "dev", true],
      ["n4", ClusterNodeState.UP, "dev", true],
      ["n5", ClusterNodeState.UP, "dev", true],
    ]);
    for (const node of listed) {
      expect(node.freeSlots).toBeGreaterThan(0);
      expect(node.facts?.drceVersion).not.toBe("");
      expect(node.url).toBe(cluster.members.get(node.name)!.child.url);
    }
    expect((await cluster.nodes.listNodes({ labels: { env: "prod" } })).nodes.map((node) => node.name)).toEqual(["n1", "n2"]);
    expect((await cluster.nodes.getNodeInfo({})).info?.role).toBe("manager");
  });

  it("runs a balanced task on exactly one node, which alone holds it, and answers later calls from it", async () => {
    const { result } = await cluster.tasks.submitTask({ task: { id: "balanced-1", command: "echo balanced", placement: { mode: PlacementMode.BALANCED } } });
    expect(result?.state).toBe(TaskState.FINISHED);
    expect(Buffer.from(result!.stdout).toString()).toBe("balanced\n");
    expect(names).toContain(result!.placedOn);
    expect(await holders("balanced-1")).toEqual([result!.placedOn]);
    const checked = await cluster.tasks.getTask({ task: "balanced-1" });
    expect(checked.result?.placedOn).toBe(result!.placedOn);
    expect(checked.result?.node).toBe(result!.placedOn);
  });

  it("goes round the nodes in name order in round-robin mode", async () => {
    const placed: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { result } = await cluster.tasks.submitTask({ task: { id: `rr-${i}`, command: "true", placement: { mode: PlacementMode.ROUND_ROBIN } } });
      placed.push(result!.placedOn);
    }
    expect([...placed].sort()).toEqual(names);
    for (let i = 0; i < 5; i++) expect(await holders(`rr-${i}`)).toEqual([placed[i]]);
  });

  it("places a random task on one node of the cluster, which alone holds it", async () => {
    for (let i = 0; i < 4; i++) {
      const { result } = await cluster.tasks.submitTask({ task: { id: `random-${i}`, command: "true", placement: { mode: PlacementMode.RANDOM } } });
      expect(names).toContain(result!.placedOn);
      expect(await holders(`random-${i}`)).toEqual([result!.placedOn]);
    }
  });

  it("places a label-targeted task only on a node carrying every label", async () => {
    for (let i = 0; i < 4; i++) {
      const { result } = await cluster.tasks.submitTask({ task: { id: `prod-${i}`, command: "true", placement: { mode: PlacementMode.ROUND_ROBIN, labels: { env: "prod", os: "linux" } } } });
      expect(["n1", "n2"]).toContain(result!.placedOn);
    }
  });

  it("fans a run out to every selected node: output named by node, one node result each, then the merged result", async () => {
    const output = new Map<string, string>();
    const nodeResults: [string, NodeRunStatus][] = [];
    let merged: { state: TaskState; nodes: [string, NodeRunStatus, number][] } | undefined;
    for await (const message of cluster.tasks.runTask({ task: { id: "all-dev", command: "echo out; echo err >&2", placement: { mode: PlacementMode.ALL, labels: { env: "dev" } } } })) {
      const event = message.event;
      if (event.case === "output") output.set(message.node ?? "", (output.get(message.node ?? "") ?? "") + Buffer.from(event.value.data).toString());
      else if (event.case === "nodeResult") nodeResults.push([message.node ?? "", event.value.status]);
      else if (event.case === "result") merged = { state: event.value.state, nodes: event.value.nodes.map((item) => [item.node, item.status, item.result?.exitStatus ?? -1]) };
    }
    expect([...output.keys()].sort()).toEqual(["n3", "n4", "n5"]);
    for (const text of output.values()) expect(text.split("\n").filter(Boolean).sort()).toEqual(["err", "out"]);
    expect(nodeResults.sort()).toEqual([
      ["n3", NodeRunStatus.FINISHED],
      ["n4", NodeRunStatus.FINISHED],
      ["n5", NodeRunStatus.FINISHED],
    ]);
    expect(merged).toEqual({ state: TaskState.FINISHED, nodes: [["n3", NodeRunStatus.FINISHED, 0], ["n4", NodeRunStatus.FINISHED, 0], ["n5", NodeRunStatus.FINISHED, 0]] });
    expect(await holders("all-dev")).toEqual(["n3", "n4", "n5"]);
    // A later call by id goes to each node holding it, merged.
    const checked = await cluster.tasks.getTask({ task: "all-dev" });
    expect(checked.result?.nodes.map((item) => [item.node, item.status])).toEqual([["n3", NodeRunStatus.FINISHED], ["n4", NodeRunStatus.FINISHED], ["n5", NodeRunStatus.FINISHED]]);
  });

  it("answers a sync fan-out to named nodes with one item per node, each with its own output", async () => {
    const { result } = await cluster.tasks.submitTask({ task: { id: "all-named", command: "echo $((6*7))", mode: TaskMode.SYNC, placement: { mode: PlacementMode.ALL, nodes: ["n5", "n1"] } } });
    expect(result?.nodes.map((item) => [item.node, item.status, Buffer.from(item.result!.stdout).toString()])).toEqual([
      ["n1", NodeRunStatus.FINISHED, "42\n"],
      ["n5", NodeRunStatus.FINISHED, "42\n"],
    ]);
  });

  it("refuses an empty selection with 5000, an unknown mode with 5001 and limits every node exceeds with 5002, in Connect and legacy form", async () => {
    const noTarget = await failure(cluster.tasks.submitTask({ task: { id: "none-1", command: "true", placement: { labels: { env: "staging" } } } }));
    expect(noTarget).toMatchObject({ code: Code.Unavailable, legacy: ErrorCode.NoTargetNode });
    expect(noTarget.message).toMatch(/^no target node available/);
    const badMode = await failure(cluster.tasks.submitTask({ task: { id: "mode-1", command: "true", placement: { mode: 99 as PlacementMode } } }));
    expect(badMode).toMatchObject({ code: Code.InvalidArgument, legacy: ErrorCode.NodeModeNotSupported });
    // Real memory in use is above a hundredth of a percent on every host.
    const overLimits = await failure(cluster.tasks.submitTask({ task: { id: "limits-1", command: "true", placement: { mode: PlacementMode.BALANCED, limits: { rram: 0.01 } } } }));
    expect(overLimits).toMatchObject({ code: Code.ResourceExhausted, legacy: ErrorCode.LimitsOnEveryNode });
    expect(await holders("none-1")).toEqual([]);
    expect(await holders("limits-1")).toEqual([]);

    expect(await legacySet("9001", { role: 1, nodes: ["n013_data"] })).toMatchObject([{ id: 9001, state: 6, error_code: ErrorCode.NoTargetNode }]);
    expect(await legacySet("9002", { role: 3 })).toMatchObject([{ id: 9002, state: 6, error_code: ErrorCode.NodeModeNotSupported }]);
    expect(await legacySet("9003", { role: 5, nodes: [], alg: 0, alg_weight: "1,1,1,1,1,1,1,1", limits: "0,0,0,0.01,0,0,0,0" })).toMatchObject([{ id: 9003, state: 6, error_code: ErrorCode.LimitsOnEveryNode }]);
  });

  it("maps the legacy route roles onto the modes: role 0 fans out, roles 1, 4 and 5 place on one node", async () => {
    const fanned = await legacySet("9100", { role: 0, nodes: ["n2", "n3"] });
    expect(fanned.map((item) => [item.node, item.state, item.error_code, Buffer.from(item.stdout ?? "", "base64").toString()])).toEqual([
      ["n2", 0, 0, "legacy\n"],
      ["n3", 0, 0, "legacy\n"],
    ]);
    for (const [id, role] of [["9101", 1], ["9104", 4], ["9105", 5]] as const) {
      const items = await legacySet(id, { role });
      expect(items).toHaveLength(1);
      expect(items[0]).toMatchObject({ id: Number(id), state: 0, error_code: 0 });
      expect(await holders(id)).toEqual([items[0]!.node]);
    }
  });

  it("returns the existing task for a repeated identical submission and refuses a different one with the same id", async () => {
    const spec: Spec = { id: "same-1", command: "echo once", placement: { mode: PlacementMode.RANDOM } };
    const first = await cluster.tasks.submitTask({ task: spec });
    const again = await cluster.tasks.submitTask({ task: spec });
    expect(again.existing).toBe(true);
    expect(again.result?.placedOn).toBe(first.result?.placedOn);
    expect(await holders("same-1")).toEqual([first.result!.placedOn]);
    const other = await failure(cluster.tasks.submitTask({ task: { ...spec, command: "echo twice" } }));
    expect(other).toMatchObject({ code: Code.AlreadyExists, legacy: ErrorCode.CreateTask });
  });

  it("gives a task without an id one id, the same on every node of its fan-out", async () => {
    const { result } = await cluster.tasks.submitTask({ task: { command: "true", placement: { mode: PlacementMode.ALL, nodes: ["n1", "n2"] } } });
    expect(result?.id).toMatch(/^\d+$/);
    expect(await holders(result!.id)).toEqual(["n1", "n2"]);
  });

  it("never runs more nodes at once than max-concurrency, measured on the nodes", async () => {
    const file = join(tmpdir(), `drce-concurrency-${process.pid}.log`);
    await rm(file, { force: true });
    try {
      const command = `echo "start $(date +%s%N)" >> ${file}; sleep 0.4; echo "end $(date +%s%N)" >> ${file}`;
      const { result } = await cluster.tasks.submitTask({ task: { id: "conc-1", command, placement: { mode: PlacementMode.ALL, maxConcurrency: { value: { case: "count", value: 2 } } } } });
      expect(result?.nodes.map((item) => item.status)).toEqual(names.map(() => NodeRunStatus.FINISHED));
      const marks = (await readFile(file, "utf8"))
        .trim()
        .split("\n")
        .map((line) => line.split(" "))
        .map(([kind, at]) => ({ kind: kind!, at: BigInt(at!) }))
        .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.kind === "end" ? -1 : 1));
      expect(marks.filter((mark) => mark.kind === "start")).toHaveLength(5);
      let running = 0;
      let peak = 0;
      for (const mark of marks) {
        running += mark.kind === "start" ? 1 : -1;
        peak = Math.max(peak, running);
      }
      expect(peak).toBeLessThanOrEqual(2);
      expect(peak).toBeGreaterThanOrEqual(1);
    } finally {
      await rm(file, { force: true });
    }
  });

  it("stops the rollout once max-errors nodes failed: the rest are not started and never get the task", async () => {
    const { result } = await cluster.tasks.submitTask({
      task: { id: "errors-1", command: "exit 3", placement: { mode: PlacementMode.ALL, maxConcurrency: { value: { case: "count", value: 1 } }, maxErrors: { value: { case: "count", value: 2 } } } },
    });
    expect(result?.nodes.map((item) => [item.node, item.status, item.result?.exitStatus ?? null])).toEqual([
      ["n1", NodeRunStatus.FINISHED, 3],
      ["n2", NodeRunStatus.FINISHED, 3],
      ["n3", NodeRunStatus.NOT_STARTED, null],
      ["n4", NodeRunStatus.NOT_STARTED, null],
      ["n5", NodeRunStatus.NOT_STARTED, null],
    ]);
    expect(result?.exitStatus).toBe(3);
    expect(await holders("errors-1")).toEqual(["n1", "n2"]);
    // Later calls report the same items: the skipped nodes are kept in the placement record.
    const checked = await cluster.tasks.getTask({ task: "errors-1" });
    expect(checked.result?.nodes.map((item) => item.status)).toEqual([NodeRunStatus.FINISHED, NodeRunStatus.FINISHED, NodeRunStatus.NOT_STARTED, NodeRunStatus.NOT_STARTED, NodeRunStatus.NOT_STARTED]);
  });

  it("answers an async fan-out once its first nodes accepted it, and runs the rest as they free up", async () => {
    const { result } = await cluster.tasks.submitTask({
      task: { id: "async-all", command: "sleep 0.5", mode: TaskMode.ASYNC, placement: { mode: PlacementMode.ALL, nodes: ["n1", "n2"], maxConcurrency: { value: { case: "count", value: 1 } } } },
    });
    expect(result?.state).toBe(TaskState.IN_PROGRESS);
    expect(result?.nodes.map((item) => [item.node, item.status])).toEqual([
      ["n1", NodeRunStatus.RUNNING],
      ["n2", NodeRunStatus.NOT_STARTED],
    ]);
    await until("the fan-out to end on both nodes", async () => (await cluster.tasks.getTask({ task: "async-all" })).result?.state === TaskState.FINISHED, 20_000);
    const done = (await cluster.tasks.getTask({ task: "async-all" })).result!;
    expect(done.nodes.map((item) => [item.node, item.status])).toEqual([
      ["n1", NodeRunStatus.FINISHED],
      ["n2", NodeRunStatus.FINISHED],
    ]);
    expect(done.nodes[1]!.result!.startedAtMs).toBeGreaterThanOrEqual(done.nodes[0]!.result!.finishedAtMs);
  });

  it("terminates the task on its node when the caller of a run through the manager goes away", async () => {
    const leave = new AbortController();
    let holder = "";
    const stream = cluster.tasks.runTask({ task: { id: "leave-1", command: "sleep 30" } }, { signal: leave.signal });
    for await (const message of stream) {
      if (message.event.case === "accepted") {
        holder = message.event.value.placedOn;
        break;
      }
    }
    leave.abort();
    expect(names).toContain(holder);
    await until("the task to be terminated on its node", async () => (await cluster.members.get(holder)!.tasks.getTask({ task: "leave-1" })).result?.state === TaskState.TERMINATED, 20_000);
  });

  it("feeds a task's stdin and follows its output through the manager", async () => {
    const { result } = await cluster.tasks.submitTask({ task: { id: "stdin-1", command: "cat", openStdin: true, mode: TaskMode.ASYNC } });
    const holder = result!.placedOn;
    async function* input() {
      yield { task: "stdin-1", data: new TextEncoder().encode("hello ") };
      yield { task: "stdin-1", data: new TextEncoder().encode("cluster\n") };
    }
    const sent = await cluster.tasks.sendTaskInput(input());
    expect(sent.written).toBe(14n);
    let text = "";
    let final: TaskState | undefined;
    for await (const message of cluster.tasks.streamTaskOutput({ task: "stdin-1", follow: true })) {
      if (message.event.case === "output") text += Buffer.from(message.event.value.data).toString();
      if (message.event.case === "result") final = message.event.value.state;
    }
    expect(text).toBe("hello cluster\n");
    expect(final).toBe(TaskState.FINISHED);
    expect(await holders("stdin-1")).toEqual([holder]);
  });

  it("follows a fanned-out task's output from every node, each chunk named by its node", async () => {
    await cluster.tasks.submitTask({ task: { id: "follow-all", command: "sleep 0.3; echo line", mode: TaskMode.ASYNC, placement: { mode: PlacementMode.ALL, nodes: ["n2", "n4"] } } });
    const lines: string[] = [];
    const ends: string[] = [];
    let merged: TaskState | undefined;
    for await (const message of cluster.tasks.streamTaskOutput({ task: "follow-all", follow: true })) {
      if (message.event.case === "output") lines.push(`${message.node}: ${Buffer.from(message.event.value.data).toString().trim()}`);
      else if (message.event.case === "nodeResult") ends.push(message.node ?? "");
      else if (message.event.case === "result") merged = message.event.value.state;
    }
    expect(lines.sort()).toEqual(["n2: line", "n4: line"]);
    expect(ends.sort()).toEqual(["n2", "n4"]);
    expect(merged).toBe(TaskState.FINISHED);
  });

  it("deletes a task on its node by id, after which the id is unknown to the manager and free again", async () => {
    const { result } = await cluster.tasks.submitTask({ task: { id: "delete-1", command: "true" } });
    const deleted = await cluster.tasks.deleteTask({ task: "delete-1" });
    expect(deleted.result?.state).toBe(TaskState.DELETED);
    expect(await holders("delete-1")).toEqual([]);
    expect(await failure(cluster.tasks.getTask({ task: "delete-1" }))).toMatchObject({ code: Code.NotFound });
    const again = await cluster.tasks.submitTask({ task: { id: "delete-1", command: "echo new" } });
    expect(again.existing).toBe(false);
    expect(names).toContain(result!.placedOn);
  });

  it("names the nodes of each task in its list and the node of each task event", async () => {
    await cluster.tasks.submitTask({ task: { id: "named-all", command: "echo named", placement: { mode: PlacementMode.ALL, nodes: ["n1", "n2"] } } });
    const one = (await cluster.tasks.submitTask({ task: { id: "named-one", command: "true", placement: { mode: PlacementMode.ALL, nodes: ["n4"] } } })).result!;
    expect(one.nodes.map((item) => item.node)).toEqual(["n4"]);
    const listed = (await cluster.tasks.listTasks({})).tasks;
    expect(listed.find((task) => task.id === "named-all")?.nodes).toEqual(["n1", "n2"]);
    expect(listed.find((task) => task.id === "named-one")?.nodes).toEqual(["n4"]);
    // A node's own list names no node: it holds its tasks itself.
    expect((await cluster.members.get("n1")!.tasks.listTasks({})).tasks.find((task) => task.id === "named-all")?.nodes).toEqual([]);

    const watch = new AbortController();
    const finishedOn = new Set<string>();
    try {
      for await (const { event } of cluster.tasks.watchTaskEvents({ task: "named-all", fromStart: true }, { signal: watch.signal, timeoutMs: 20_000 })) {
        expect(["n1", "n2"]).toContain(event?.node);
        if (event?.state === TaskState.FINISHED) finishedOn.add(event.node!);
        if (finishedOn.size === 2) break;
      }
    } finally {
      watch.abort();
    }
    expect([...finishedOn].sort()).toEqual(["n1", "n2"]);
  });

  it("answers an unknown id with NotFound, as a node does", async () => {
    expect(await failure(cluster.tasks.getTask({ task: "no-such-task" }))).toMatchObject({ code: Code.NotFound });
    const res = await fetch(`${cluster.url}/drce`, { method: "POST", body: JSON.stringify({ type: 1, id: 424242, data: Buffer.from(JSON.stringify({ type: 1 })).toString("base64") }) });
    expect(await res.json()).toMatchObject([{ id: 424242, state: 3 }]);
  });

  it("lists the tasks it placed, merged, and serves per-node figures on /metrics", async () => {
    const listed = (await cluster.tasks.listTasks({})).tasks.map((task) => task.id);
    expect(listed).toEqual(expect.arrayContaining(["balanced-1", "all-dev", "errors-1"]));
    const metrics = await (await fetch(`${cluster.url}/metrics`)).text();
    for (const name of names) {
      expect(metrics).toContain(`drce_cluster_node_up{node="${name}"} 1`);
      expect(metrics).toMatch(new RegExp(`drce_cluster_tasks_placed\\{node="${name}"\\} [1-9]`));
    }
    expect(metrics).toMatch(/drce_cluster_dispatch_seconds_count\{node="n1"\} [1-9]/);
  });
});
