import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDirectTransport, type FleetTransport } from "../../src/cluster/fleet-transport.js";
import { createForwardedStates } from "../../src/cluster/forwarded-states.js";
import { createManagerContext } from "../../src/cluster/manager-context.js";
import { createMembership, type Membership } from "../../src/cluster/membership.js";
import { createPlacementRecord, type PlacementEntry, type PlacementRecord } from "../../src/cluster/placement-record.js";
import { createPlacer } from "../../src/cluster/placement.js";
import { createRecordReconcile, type RecordReconcile } from "../../src/cluster/record-reconcile.js";
import { createLogger } from "../../src/logger.js";
import { freePort } from "../helpers/cluster.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * The reconciliation of a placement record with real data nodes: "real" (reached), "locked"
 * (it wants a token the manager does not have: it answers every call with Unauthenticated)
 * and "ghost" (nothing listens at its address).
 */

const logger = createLogger("silent");
let real: TestNode;
let locked: TestNode;
let dir: string;
let transport: FleetTransport;
let members: Membership;
let record: PlacementRecord;
let reconcile: RecordReconcile;
const swept: string[] = [];
const startedAt = Date.now();

const entry = (id: string, nodes: string[], fields: Partial<PlacementEntry> = {}): PlacementEntry => ({ id, alias: "", ids: [id], digest: `d-${id}`, kind: nodes.length > 1 ? "all" : "one", nodes, skipped: {}, mode: 1, placedAt: 1000, ...fields });

beforeAll(async () => {
  [real, locked] = await Promise.all([startNode({ name: "real" }), startNode({ name: "locked", token: "not-the-cluster-token" })]);
  dir = await mkdtemp(join(tmpdir(), "drce-reconcile-"));
  transport = createDirectTransport({ token: "" });
  members = createMembership({ dataDir: dir, listed: [], heartbeatMs: 60_000, nodeTimeoutMs: 180_000, transport, logger });
  await members.start();
  const idle = { usage: { cpu: 0, iowait: 0, vram: 0, rram: 0, disk: 0, processes: 0, threads: 0, loadavg: 0 }, balancing: "", freeSlots: 4, running: 0 };
  await members.register({ name: "real", url: real.url, labels: {}, facts: undefined, report: idle });
  await members.register({ name: "locked", url: locked.url, labels: {}, facts: undefined, report: idle });
  await members.register({ name: "ghost", url: `http://127.0.0.1:${await freePort()}`, labels: {}, facts: undefined, report: idle });
  record = createPlacementRecord({ dir: join(dir, "placements") });
  const options = { members, transport, record, placer: createPlacer({ mode: "round-robin", weights: {} }), eventHistory: 100, logger };
  const context = createManagerContext(options, createForwardedStates({ ...options }), new AbortController().signal);
  reconcile = createRecordReconcile(context, {
    startedAt,
    sweep: async (gone) => {
      swept.push(gone.id);
      await record.remove(gone.id);
    },
  });
}, 60_000);

afterAll(async () => {
  await members?.close();
  transport?.close();
  await Promise.all([real?.stop(), locked?.stop()]);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("the reconciliation of the placement record with a node", () => {
  it("sweeps only entries every holding node answers NotFound for, and leaves the held, the unreachable and the just placed", async () => {
    await real.client.submitTask({ task: { id: "held", command: "true" } });
    await record.put(entry("gone", ["real"]));
    await record.put(entry("held", ["real"]));
    await record.put(entry("half", ["ghost", "real"]));
    // Placed by this process a moment ago: its forwarding may still be on its way.
    await record.put(entry("fresh", ["real"], { placedAt: Date.now() }));

    expect(await reconcile.reconcile("real")).toEqual({ checked: 3, asked: 2, swept: 1 });
    expect(swept).toEqual(["gone"]);
    expect(record.find("gone")).toBeUndefined();
    for (const id of ["held", "half", "fresh"]) expect(record.find(id)?.id).toBe(id);
  });

  it("removes nothing when the node answers its list with an error, or cannot be reached", async () => {
    await record.put(entry("locked-1", ["locked"]));
    await record.put(entry("ghost-1", ["ghost"]));
    await expect(reconcile.reconcile("locked")).rejects.toThrow(/unauthenticated|token/i);
    await expect(reconcile.reconcile("ghost")).rejects.toThrow();
    expect(record.find("locked-1")?.id).toBe("locked-1");
    expect(record.find("ghost-1")?.id).toBe("ghost-1");
    expect(swept).toEqual(["gone"]);
  });
});
