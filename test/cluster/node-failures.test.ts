import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNodeState } from "../../gen/drce/v1/node_service_pb.js";
import { NodeRunStatus, PlacementMode, TaskMode, TaskState } from "../../gen/drce/v1/task_pb.js";
import { ErrorCode } from "../../src/domain/errors.js";
import { startCluster, until, type TestCluster } from "../helpers/cluster.js";

/*
 * A manager and five data nodes as real processes, heartbeats every 300 ms (a node is
 * suspect after 600 ms of silence, down after 3 s), and what happens when nodes and the
 * manager die or stall.
 */

const names = ["n1", "n2", "n3", "n4", "n5"];
let cluster: TestCluster;

beforeAll(async () => {
  // A long node timeout leaves a wide window in which a stalled node is suspect.
  cluster = await startCluster({ nodes: names.map((name) => ({ name })), managerFlags: ["--node-timeout-ms", "3000"] });
}, 180_000);

afterAll(async () => {
  for (const member of cluster?.members.values() ?? []) member.child.proc.kill("SIGCONT");
  await cluster?.stop();
}, 60_000);

/** The state of a task in a node's own task list, or undefined when the node does not hold it. */
async function stateOn(name: string, id: string): Promise<TaskState | undefined> {
  const tasks = (await cluster.members.get(name)!.tasks.listTasks({})).tasks;
  return tasks.find((task) => task.id === id)?.state;
}

async function connectFailure(call: Promise<unknown>): Promise<ConnectError> {
  const error = await call.then(
    () => undefined,
    (reason: unknown) => ConnectError.from(reason),
  );
  if (error === undefined) throw new Error("the call succeeded");
  return error;
}

describe("a cluster whose nodes and manager fail", () => {
  it("reports a node killed mid fan-out as unreachable while the others finish, never reruns its share, and reports its real state once it is back", { timeout: 120_000 }, async () => {
    const submitted = cluster.tasks.submitTask({ task: { id: "kill-all", command: "sleep 2; echo done", mode: TaskMode.SYNC, placement: { mode: PlacementMode.ALL } } });
    await until("every node running its share", async () => (await Promise.all(names.map((name) => stateOn(name, "kill-all")))).every((state) => state === TaskState.IN_PROGRESS));
    cluster.members.get("n3")!.child.kill();
    const { result } = await submitted;
    expect(result?.nodes.map((item) => [item.node, item.status])).toEqual([
      ["n1", NodeRunStatus.FINISHED],
      ["n2", NodeRunStatus.FINISHED],
      ["n3", NodeRunStatus.UNREACHABLE],
      ["n4", NodeRunStatus.FINISHED],
      ["n5", NodeRunStatus.FINISHED],
    ]);
    const lost = result!.nodes[2]!;
    expect(lost.errorCode).toBe(ErrorCode.NoTargetNode);
    expect(lost.errorMessage).toMatch(/^node n3 is unreachable/);
    expect(result?.errorCode).toBe(ErrorCode.NoTargetNode);
    for (const name of ["n1", "n2", "n4", "n5"]) {
      const tasks = (await cluster.members.get(name)!.tasks.listTasks({})).tasks.filter((task) => task.id === "kill-all");
      expect(tasks.map((task) => task.state)).toEqual([TaskState.FINISHED]);
    }

    // While n3 is away, a check names it with the last state known there.
    await cluster.waitForState(["n3"], ClusterNodeState.DOWN);
    const away = await cluster.tasks.getTask({ task: "kill-all" });
    expect(away.result?.nodes[2]).toMatchObject({ node: "n3", status: NodeRunStatus.UNREACHABLE, errorCode: ErrorCode.NoTargetNode });
    expect(away.result?.nodes[2]?.result?.state).toBe(TaskState.IN_PROGRESS);

    await cluster.restartNode("n3");
    await cluster.waitForState(["n3"], ClusterNodeState.UP);
    const back = await cluster.tasks.getTask({ task: "kill-all" });
    expect(back.result?.nodes[2]).toMatchObject({ node: "n3", status: NodeRunStatus.FAILED });
    expect(back.result?.nodes[2]?.result?.state).toBe(TaskState.CRASHED);
  });

  it("answers a call for a task on a dead node with Unavailable naming the node and its last known state, and never runs the task elsewhere", { timeout: 120_000 }, async () => {
    const { result } = await cluster.tasks.submitTask({ task: { id: "kill-one", command: "sleep 30", mode: TaskMode.ASYNC, placement: { mode: PlacementMode.ROUND_ROBIN } } });
    const holder = result!.placedOn;
    await until("the task running on its node", async () => (await stateOn(holder, "kill-one")) === TaskState.IN_PROGRESS);
    await until("the manager to know it runs", async () => (await cluster.tasks.getTask({ task: "kill-one" })).result?.state === TaskState.IN_PROGRESS);
    cluster.members.get(holder)!.child.kill();
    await cluster.members.get(holder)!.child.exited;
    const error = await connectFailure(cluster.tasks.getTask({ task: "kill-one" }));
    expect(error.code).toBe(Code.Unavailable);
    expect(Number(error.metadata.get("drce-error-code"))).toBe(ErrorCode.NoTargetNode);
    expect(error.rawMessage).toMatch(new RegExp(`^node ${holder}, which holds task kill-one, is unreachable \\(.*\\); its last known state is in progress$`));
    for (const name of names.filter((name) => name !== holder)) expect(await stateOn(name, "kill-one")).toBeUndefined();

    await cluster.restartNode(holder);
    await cluster.waitForState([holder], ClusterNodeState.UP);
    const back = await cluster.tasks.getTask({ task: "kill-one" });
    expect(back.result?.state).toBe(TaskState.CRASHED);
    expect(back.result?.placedOn).toBe(holder);
    for (const name of names.filter((name) => name !== holder)) expect(await stateOn(name, "kill-one")).toBeUndefined();
  });

  it("takes a joined node that stops sending heartbeats for suspect, then down, skips it, and takes it back once it is heard from", { timeout: 120_000 }, async () => {
    const stalled = cluster.members.get("n5")!;
    stalled.child.proc.kill("SIGSTOP");
    try {
      await cluster.waitForState(["n5"], ClusterNodeState.SUSPECT);
      await cluster.waitForState(["n5"], ClusterNodeState.DOWN);
      const placed = new Set<string>();
      for (let i = 0; i < 6; i++) placed.add((await cluster.tasks.submitTask({ task: { id: `skip-${i}`, command: "true", placement: { mode: PlacementMode.ROUND_ROBIN } } })).result!.placedOn);
      expect([...placed].sort()).toEqual(["n1", "n2", "n3", "n4"]);
    } finally {
      stalled.child.proc.kill("SIGCONT");
    }
    await cluster.waitForState(["n5"], ClusterNodeState.UP);
    const { result } = await cluster.tasks.submitTask({ task: { id: "back-1", command: "true", placement: { mode: PlacementMode.ALL, nodes: ["n5"] } } });
    expect(result?.nodes.map((item) => [item.node, item.status])).toEqual([["n5", NodeRunStatus.FINISHED]]);
  });

  it("comes back from a SIGKILL of the manager with its nodes and placements: calls by id reach the right nodes", { timeout: 120_000 }, async () => {
    const one = (await cluster.tasks.submitTask({ task: { id: "mgr-one", alias: "mgr-alias", command: "sleep 1; echo kept", mode: TaskMode.ASYNC, placement: { mode: PlacementMode.RANDOM } } })).result!;
    const all = (await cluster.tasks.submitTask({ task: { id: "mgr-all", command: "echo fanned", placement: { mode: PlacementMode.ALL, nodes: ["n2", "n4"] } } })).result!;
    expect(all.nodes.map((item) => item.status)).toEqual([NodeRunStatus.FINISHED, NodeRunStatus.FINISHED]);

    await cluster.restartManager();
    await cluster.waitForState(names, ClusterNodeState.UP);
    await until("the task on its node to finish", async () => (await cluster.tasks.getTask({ task: "mgr-one" })).result?.state === TaskState.FINISHED);
    const fetched = await cluster.tasks.fetchTask({ task: "mgr-alias" });
    expect(fetched.result?.placedOn).toBe(one.placedOn);
    expect(Buffer.from(fetched.result!.stdout).toString()).toBe("kept\n");
    const again = await cluster.tasks.getTask({ task: "mgr-all" });
    expect(again.result?.nodes.map((item) => [item.node, item.status])).toEqual([
      ["n2", NodeRunStatus.FINISHED],
      ["n4", NodeRunStatus.FINISHED],
    ]);
    const refetched = await cluster.tasks.fetchTask({ task: "mgr-all" });
    expect(refetched.result?.nodes.map((item) => Buffer.from(item.result!.stdout).toString())).toEqual(["fanned\n", "fanned\n"]);
    // The same id with another request is still refused: the placement survived.
    const taken = await connectFailure(cluster.tasks.submitTask({ task: { id: "mgr-one", command: "true" } }));
    expect(taken.code).toBe(Code.AlreadyExists);
  });
  it("carries on an async fan-out's rollout after a SIGKILL of the manager: nodes it had not reached start, none starts twice", { timeout: 120_000 }, async () => {
    // One node at a time, each share taking a while: the manager dies with most nodes not reached.
    const placement = { mode: PlacementMode.ALL, maxConcurrency: { value: { case: "count" as const, value: 1 } } };
    const first = (await cluster.tasks.submitTask({ task: { id: "resumed-all", command: "sleep 0.6; echo resumed", mode: TaskMode.ASYNC, placement } })).result!;
    expect(first.nodes.filter((item) => item.status === NodeRunStatus.NOT_STARTED).length).toBeGreaterThanOrEqual(3);
    await cluster.restartManager();
    await cluster.waitForState(names, ClusterNodeState.UP);
    let nodesOf: string[] = [];
    await until(
      "every node's share to finish",
      async () => {
        const result = (await cluster.tasks.getTask({ task: "resumed-all" })).result;
        nodesOf = result?.nodes.map((item) => item.node) ?? [];
        return result?.nodes.every((item) => item.status === NodeRunStatus.FINISHED) === true;
      },
      60_000,
    );
    expect(nodesOf).toEqual(names);
    for (const name of names) {
      const held = (await cluster.members.get(name)!.tasks.listTasks({})).tasks.filter((task) => task.id === "resumed-all");
      expect(held.map((task) => task.state)).toEqual([TaskState.FINISHED]);
      const fetched = await cluster.members.get(name)!.tasks.fetchTask({ task: "resumed-all" });
      expect(Buffer.from(fetched.result!.stdout).toString()).toBe("resumed\n");
    }
  });
});
