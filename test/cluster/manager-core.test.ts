import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDirectTransport, type FleetTransport } from "../../src/cluster/fleet-transport.js";
import { createManagerCore, type ManagerCore } from "../../src/cluster/manager-core.js";
import { createMembership, type Membership } from "../../src/cluster/membership.js";
import { createPlacementRecord, type PlacementRecord } from "../../src/cluster/placement-record.js";
import { createPlacer } from "../../src/cluster/placement.js";
import { TaskState } from "../../src/domain/states.js";
import { taskSpec } from "../../src/domain/task.js";
import { createLogger } from "../../src/logger.js";
import { freePort } from "../helpers/cluster.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * The manager's core over a real data node and a node whose address nothing listens at
 * ("ghost"), both up in the node list (no heartbeat is due for a minute).
 */

let node: TestNode;
let dir: string;
let transport: FleetTransport;
let members: Membership;
let record: PlacementRecord;
let core: ManagerCore;

beforeAll(async () => {
  node = await startNode({ name: "real" });
  dir = await mkdtemp(join(tmpdir(), "drce-manager-core-"));
  const logger = createLogger("silent");
  transport = createDirectTransport({ token: "" });
  members = createMembership({ dataDir: dir, listed: [], heartbeatMs: 60_000, nodeTimeoutMs: 180_000, transport, logger });
  await members.start();
  const idle = { usage: { cpu: 0, iowait: 0, vram: 0, rram: 0, disk: 0, processes: 0, threads: 0, loadavg: 0 }, balancing: "", freeSlots: 4, running: 0 };
  await members.register({ name: "ghost", url: `http://127.0.0.1:${await freePort()}`, labels: {}, facts: undefined, report: idle });
  await members.register({ name: "real", url: node.url, labels: {}, facts: undefined, report: idle });
  record = createPlacementRecord({ dir: join(dir, "placements") });
  core = createManagerCore({ members, transport, record, placer: createPlacer({ mode: "round-robin", weights: {} }), eventHistory: 100, logger });
  await core.init();
}, 60_000);

afterAll(async () => {
  await core?.shutdown(1000);
  await members?.close();
  transport?.close();
  await node?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("the manager's core", () => {
  it("moves a submission to another node when the first provably never got it, and records where it went", async () => {
    // Round robin starts at the first name, "ghost": nothing listens there.
    const outcome = await core.submit(taskSpec({ id: "moved-1", command: "echo moved" }));
    expect(outcome.view.placedOn).toBe("real");
    expect(outcome.view.status.state).toBe(TaskState.Finished);
    expect(Buffer.from(outcome.view.stdout ?? new Uint8Array()).toString()).toBe("moved\n");
    expect(record.find("moved-1")?.nodes).toEqual(["real"]);
    const reopened = createPlacementRecord({ dir: join(dir, "placements") });
    await reopened.load();
    expect(reopened.find("moved-1")?.nodes).toEqual(["real"]);
    expect((await node.client.listTasks({})).tasks.map((task) => task.id)).toContain("moved-1");
  });

  it("reports a fan-out's node that nothing listens at as unreachable, with error 5000, and runs the task on the others", async () => {
    const outcome = await core.submit(taskSpec({ id: "fan-1", command: "true", placement: { mode: "all" } }));
    expect(outcome.view.nodes?.map((item) => [item.node, item.status, item.errorCode])).toEqual([
      ["ghost", "unreachable", 5000],
      ["real", "finished", 0],
    ]);
    expect(outcome.view.nodes?.[0]?.errorMessage).toMatch(/^node ghost is unreachable: connection refused/);
  });

  it("gives a node that has not answered by the gather time a timed-out item, never a gap", async () => {
    const outcome = await core.submit(taskSpec({ id: "gather-1", command: "sleep 30", placement: { mode: "all", gatherTimeoutMs: 300 } }));
    expect(outcome.view.nodes?.map((item) => [item.node, item.status])).toEqual([
      ["ghost", "unreachable"],
      ["real", "timed-out"],
    ]);
    // The task itself runs on; terminating it through the manager reaches it.
    const ended = await core.terminate("gather-1", { alg: 2, delayMs: 100, repeat: 1, signal: 9, cleanup: false });
    expect(ended.nodes?.find((item) => item.node === "real")?.view?.status.state).toBe(TaskState.Terminated);
  });

  it("lists what it placed, with the states the nodes reported", async () => {
    const listed = core.list();
    expect(listed.find((status) => status.id === "moved-1")?.state).toBe(TaskState.Finished);
    expect(listed.map((status) => status.id)).toEqual(expect.arrayContaining(["moved-1", "fan-1"]));
  });
});
