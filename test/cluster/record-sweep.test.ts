import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { ClusterNodeState, NodeService } from "../../gen/drce/v1/node_service_pb.js";
import { NodeRunStatus, PlacementMode } from "../../gen/drce/v1/task_pb.js";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { startNode, until, type TestNode } from "../helpers/node.js";
import { clientFor } from "../security/clients.js";

/*
 * A manager and two joined data nodes in this process, the nodes deleting finished tasks
 * a second after they end (--retain-finished 1s): the manager's record follows their sweeps.
 */

const token = "cluster-secret";
let manager: TestNode;
let sweeping: TestNode[] = [];

beforeAll(async () => {
  manager = await startNode({ role: "manager", name: "manager", token, heartbeatMs: 200 });
  sweeping = [
    await startNode({ name: "s1", token, join: manager.url, heartbeatMs: 200, retainFinishedMs: 1000 }),
    await startNode({ name: "s2", token, join: manager.url, heartbeatMs: 200, retainFinishedMs: 1000 }),
  ];
});

afterAll(async () => {
  await Promise.all([...sweeping, manager].map((node) => node?.stop()));
});

describe("a manager over nodes whose retention deletes finished tasks", () => {
  it("drops a task from its list and its placement record once every node holding it deleted it", { timeout: 60_000 }, async () => {
    const tasks = clientFor(TaskService, manager.url, { token });
    const nodes = clientFor(NodeService, manager.url, { token });
    try {
      await until(async () => (await nodes.client.listNodes({})).nodes, (items) => items.filter((item) => item.state === ClusterNodeState.UP).length === 2, 20_000, "both nodes to join");
      const { result } = await tasks.client.submitTask({ task: { id: "swept-all", command: "echo swept", placement: { mode: PlacementMode.ALL } } });
      expect(result?.nodes.map((item) => [item.node, item.status])).toEqual([
        ["s1", NodeRunStatus.FINISHED],
        ["s2", NodeRunStatus.FINISHED],
      ]);
      const entry = join(manager.dataDir, "cluster", "placements", "swept-all.json");
      expect((await tasks.client.listTasks({})).tasks.map((task) => task.id)).toContain("swept-all");
      expect((await tasks.client.getTask({ task: "swept-all" })).result?.id).toBe("swept-all");
      await until(async () => (await tasks.client.listTasks({})).tasks.map((task) => task.id), (ids) => !ids.includes("swept-all"), 20_000, "the swept task to leave the manager's list");
      // Out of the record: routed by id no more, and no entry file (a removal takes its file at once).
      await expect(tasks.client.getTask({ task: "swept-all" })).rejects.toMatchObject({ code: Code.NotFound });
      expect(existsSync(entry)).toBe(false);
      // The id is free again, as on a node once its task was deleted.
      const again = await tasks.client.submitTask({ task: { id: "swept-all", command: "echo again", placement: { mode: PlacementMode.ALL, nodes: ["s1"] } } });
      expect(Buffer.from(again.result!.nodes[0]!.result!.stdout).toString()).toBe("again\n");
    } finally {
      tasks.close();
      nodes.close();
    }
  });
});
