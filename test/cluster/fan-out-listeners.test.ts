import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createDirectTransport, type FleetTransport } from "../../src/cluster/fleet-transport.js";
import { createManagerCore, type ManagerCore } from "../../src/cluster/manager-core.js";
import { createMembership, type Membership } from "../../src/cluster/membership.js";
import { createPlacementRecord } from "../../src/cluster/placement-record.js";
import { createPlacer } from "../../src/cluster/placement.js";
import type { RunEvent } from "../../src/core/api.js";
import { TaskMode, TaskState } from "../../src/domain/states.js";
import { taskSpec } from "../../src/domain/task.js";
import { createLogger } from "../../src/logger.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * A fan-out to more nodes than an AbortSignal's default listener bound (10): every node's call
 * follows the caller's signal and the fan-out's stop, and none of them may make Node.js warn of
 * a listener leak on the manager's stderr. Sixteen members are registered at the address of
 * one real node, each under its own name, so the manager makes sixteen calls at once.
 */

const names = Array.from({ length: 16 }, (_, i) => `member-${String(i + 1).padStart(2, "0")}`);
let node: TestNode;
let dir: string;
let transport: FleetTransport;
let members: Membership;
let core: ManagerCore;
const warnings: Error[] = [];
const onWarning = (warning: Error): void => void warnings.push(warning);

beforeAll(async () => {
  process.on("warning", onWarning);
  node = await startNode({ name: "one" });
  dir = await mkdtemp(join(tmpdir(), "drce-fan-out-listeners-"));
  const logger = createLogger("silent");
  transport = createDirectTransport({ token: "" });
  members = createMembership({ dataDir: dir, listed: [], heartbeatMs: 60_000, nodeTimeoutMs: 180_000, transport, logger });
  await members.start();
  const idle = { usage: { cpu: 0, iowait: 0, vram: 0, rram: 0, disk: 0, processes: 0, threads: 0, loadavg: 0 }, balancing: "", freeSlots: 4, running: 0 };
  for (const name of names) await members.register({ name, url: node.url, labels: {}, facts: undefined, report: idle });
  const record = createPlacementRecord({ dir: join(dir, "placements") });
  core = createManagerCore({ members, transport, record, placer: createPlacer({ mode: "round-robin", weights: {} }), eventHistory: 100, logger });
  await core.init();
}, 60_000);

afterAll(async () => {
  process.off("warning", onWarning);
  await core?.shutdown(1000);
  await members?.close();
  transport?.close();
  await node?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

beforeEach(() => void (warnings.length = 0));

const leaks = (): string[] => warnings.filter((warning) => warning.name === "MaxListenersExceededWarning").map((warning) => warning.message);

describe("a fan-out to more than ten nodes", () => {
  it("runs attached (RunTask) without a listener-leak warning, with one result per node", async () => {
    const events: RunEvent[] = [];
    for await (const event of core.run(taskSpec({ id: "wide-run", command: "echo wide", placement: { mode: "all" } }), new AbortController().signal)) events.push(event);
    const results = events.filter((event) => event.kind === "node-result");
    expect(results).toHaveLength(names.length);
    expect(events.at(-1)?.kind).toBe("result");
    expect(leaks()).toEqual([]);
  });

  it("submits sync and async fan-outs without one", async () => {
    const sync = await core.submit(taskSpec({ id: "wide-sync", command: "true", mode: TaskMode.Sync, placement: { mode: "all" } }));
    expect(sync.view.nodes).toHaveLength(names.length);
    const async = await core.submit(taskSpec({ id: "wide-async", command: "true", placement: { mode: "all" } }));
    expect(async.view.nodes).toHaveLength(names.length);
    expect(async.view.status.state).not.toBe(TaskState.Deleted);
    expect(leaks()).toEqual([]);
  });

  it("streams a fanned-out task's output from every node without one", async () => {
    const events = [];
    for await (const event of core.streamOutput("wide-run", { stdout: 0, stderr: 0 }, false, new AbortController().signal)) events.push(event);
    expect(events.filter((event) => event.kind === "node-result")).toHaveLength(names.length);
    expect(leaks()).toEqual([]);
  });
});
