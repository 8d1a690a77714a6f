import { Code, ConnectError } from "@connectrpc/connect";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNodeState } from "../../gen/drce/v1/node_service_pb.js";
import { NodeRunStatus, PlacementMode, TaskMode, TaskState } from "../../gen/drce/v1/task_pb.js";
import { ErrorCode } from "../../src/domain/errors.js";
import { TaskState as DomainState } from "../../src/domain/states.js";
import { startCluster, until, type TestCluster } from "../helpers/cluster.js";

/*
 * A manager and two data nodes as real processes (heartbeats every 300 ms), and what a
 * manager knows after a SIGKILL and a restart: the last states it saw of tasks on a node
 * that is away, and the tasks deleted on their nodes while it was not looking.
 */

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster({ nodes: [{ name: "n1" }, { name: "n2" }] });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

async function connectFailure(call: Promise<unknown>): Promise<ConnectError> {
  const error = await call.then(
    () => undefined,
    (reason: unknown) => ConnectError.from(reason),
  );
  if (error === undefined) throw new Error("the call succeeded");
  return error;
}

/** The states the manager's log of last states holds for a task on a node (in the order written). */
async function keptStates(node: string, id: string): Promise<number[]> {
  const text = await readFile(join(cluster.managerDataDir, "cluster", "last-states.log"), "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as { n: string; v?: { status: { id: string; state: number } } })
    .filter((line) => line.n === node && line.v?.status.id === id)
    .map((line) => line.v!.status.state);
}

const entryFile = (id: string): string => join(cluster.managerDataDir, "cluster", "placements", `${id}.json`);

/** Kills a data node (SIGKILL) and waits for it to be gone. */
async function killNode(name: string): Promise<void> {
  const member = cluster.members.get(name)!;
  member.child.kill();
  await member.child.exited;
}

/** The legacy check message of a numeric task id. */
const legacyCheck = (id: number): string => JSON.stringify({ type: 1, id, data: Buffer.from(JSON.stringify({ type: 0 })).toString("base64") });

describe("a manager restarted while its nodes changed", () => {
  it("answers for the tasks of a node that is away with the last states it saw before its restart, then with the node's own once it is back", { timeout: 120_000 }, async () => {
    await cluster.tasks.submitTask({ task: { id: "away-one", command: "sleep 60", mode: TaskMode.ASYNC, placement: { mode: PlacementMode.ROUND_ROBIN, nodes: ["n1"] } } });
    const all = (await cluster.tasks.submitTask({ task: { id: "away-all", command: "echo fanned", placement: { mode: PlacementMode.ALL } } })).result!;
    expect(all.nodes.map((item) => [item.node, item.status])).toEqual([
      ["n1", NodeRunStatus.FINISHED],
      ["n2", NodeRunStatus.FINISHED],
    ]);
    await until("the manager to know the task runs", async () => (await cluster.tasks.getTask({ task: "away-one" })).result?.state === TaskState.IN_PROGRESS);
    await until("the manager to have written that it runs", async () => (await keptStates("n1", "away-one")).at(-1) === DomainState.InProgress);
    await until("the manager to have written the fan-out's end on n1", async () => (await keptStates("n1", "away-all")).at(-1) === DomainState.Finished);

    await killNode("n1");
    await cluster.restartManager();
    await cluster.waitForState(["n2"], ClusterNodeState.UP);

    const error = await connectFailure(cluster.tasks.getTask({ task: "away-one" }));
    expect(error.code).toBe(Code.Unavailable);
    expect(Number(error.metadata.get("drce-error-code"))).toBe(ErrorCode.NoTargetNode);
    expect(error.rawMessage).toMatch(/^node n1, which holds task away-one, is unreachable \(.*\); its last known state is in progress$/);
    const away = (await cluster.tasks.getTask({ task: "away-all" })).result!;
    expect(away.nodes[0]).toMatchObject({ node: "n1", status: NodeRunStatus.UNREACHABLE, errorCode: ErrorCode.NoTargetNode });
    expect(away.nodes[0]?.result?.state).toBe(TaskState.FINISHED);
    expect(away.nodes[1]).toMatchObject({ node: "n2", status: NodeRunStatus.FINISHED });
    // The manager's list shows the kept states too, not a task it knows nothing of.
    expect((await cluster.tasks.listTasks({})).tasks.find((task) => task.id === "away-one")?.state).toBe(TaskState.IN_PROGRESS);

    await cluster.restartNode("n1");
    await cluster.waitForState(["n1"], ClusterNodeState.UP);
    const back = await cluster.tasks.getTask({ task: "away-one" });
    expect(back.result?.state).toBe(TaskState.CRASHED);
    expect(back.result?.placedOn).toBe("n1");
    await until("the node's real state to be written in place of the kept one", async () => (await keptStates("n1", "away-one")).at(-1) === DomainState.Crashed);
  });

  it("sweeps the entries of tasks deleted on every node that held them while it was down, at its start and when a down node comes back, and keeps the rest", { timeout: 120_000 }, async () => {
    await cluster.waitForState(["n1", "n2"], ClusterNodeState.UP);
    await cluster.tasks.submitTask({ task: { id: "7201", command: "true", placement: { mode: PlacementMode.ROUND_ROBIN, nodes: ["n1"] } } });
    await cluster.tasks.submitTask({ task: { id: "7202", command: "true", placement: { mode: PlacementMode.ROUND_ROBIN, nodes: ["n1"] } } });
    const all = (await cluster.tasks.submitTask({ task: { id: "7203", command: "true", placement: { mode: PlacementMode.ALL } } })).result!;
    expect(all.nodes.map((item) => item.status)).toEqual([NodeRunStatus.FINISHED, NodeRunStatus.FINISHED]);
    // Placed: the manager routes each by id (their entry files come with its next checkpoint or its stop).
    for (const id of ["7201", "7202", "7203"]) expect((await cluster.tasks.getTask({ task: id })).result?.id).toBe(id);

    // While the manager is away, 7201 and the fan-out 7203 are deleted on their nodes directly; then n2 goes away too.
    cluster.manager.kill();
    await cluster.manager.exited;
    await cluster.members.get("n1")!.tasks.deleteTask({ task: "7201" });
    await cluster.members.get("n1")!.tasks.deleteTask({ task: "7203" });
    await cluster.members.get("n2")!.tasks.deleteTask({ task: "7203" });
    await killNode("n2");
    await cluster.restartManager();

    await until("the entry deleted on its node to be swept at start", () => !existsSync(entryFile("7201")));
    await until("the manager to have reconciled with n1", () => cluster.manager.log().split("\n").some((line) => line.includes('"reconciled the placement record with a node"') && line.includes('"node":"n1"')));
    const gone = await connectFailure(cluster.tasks.getTask({ task: "7201" }));
    expect(gone.code).toBe(Code.NotFound);
    expect((await cluster.tasks.listTasks({})).tasks.map((task) => task.id)).not.toContain("7201");
    // A task its node still holds stays; a fan-out whose other node is unreachable stays too.
    expect(existsSync(entryFile("7202"))).toBe(true);
    expect((await cluster.tasks.getTask({ task: "7202" })).result?.state).toBe(TaskState.FINISHED);
    expect(existsSync(entryFile("7203"))).toBe(true);
    const partial = (await cluster.tasks.getTask({ task: "7203" })).result!;
    expect(partial.nodes.map((item) => item.node)).toEqual(["n1", "n2"]);
    // n1 no longer holds it: failed with its last known state, or not started when none reached the log before the kill.
    expect([NodeRunStatus.FAILED, NodeRunStatus.NOT_STARTED]).toContain(partial.nodes[0]!.status);
    expect(partial.nodes[1]).toMatchObject({ status: NodeRunStatus.UNREACHABLE, errorCode: ErrorCode.NoTargetNode });

    // Once n2 is back, it too answers NotFound for 7203: the entry goes, and the legacy check says "not found" (state 3, no error).
    await cluster.restartNode("n2");
    await cluster.waitForState(["n2"], ClusterNodeState.UP);
    await until("the fan-out's entry to be swept once n2 is back", () => !existsSync(entryFile("7203")));
    expect((await connectFailure(cluster.tasks.getTask({ task: "7203" }))).code).toBe(Code.NotFound);
    const res = await fetch(`${cluster.url}/drce`, { method: "POST", body: legacyCheck(7203) });
    expect(await res.json()).toMatchObject([{ id: 7203, state: 3, error_code: 0 }]);
    expect(existsSync(entryFile("7202"))).toBe(true);
    // The id is free again, as on a node once its task was deleted.
    const again = await cluster.tasks.submitTask({ task: { id: "7203", command: "echo again", placement: { mode: PlacementMode.ALL, nodes: ["n2"] } } });
    expect(Buffer.from(again.result!.nodes[0]!.result!.stdout).toString()).toBe("again\n");
  });
});
