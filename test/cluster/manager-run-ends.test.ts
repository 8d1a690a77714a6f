import { create } from "@bufbuild/protobuf";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskResultSchema, TaskState as ProtoTaskState } from "../../gen/drce/v1/task_pb.js";
import { RunTaskResponseSchema, TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { createDirectTransport, type FleetTransport } from "../../src/cluster/fleet-transport.js";
import { createManagerCore, type ManagerCore } from "../../src/cluster/manager-core.js";
import { createMembership, type Membership } from "../../src/cluster/membership.js";
import { createPlacementRecord } from "../../src/cluster/placement-record.js";
import { createPlacer } from "../../src/cluster/placement.js";
import type { RunEvent } from "../../src/core/api.js";
import { TaskState } from "../../src/domain/states.js";
import { taskSpec } from "../../src/domain/task.js";
import { createLogger } from "../../src/logger.js";
import { startScriptedServer, type ScriptedServer } from "../helpers/scripted-server.js";

/*
 * When an attached run through the manager ends: with the node's result, its last message,
 * not with the end of the node's stream after it; and a caller that leaves before the result
 * cancels the node's call (which terminates the task there). Two scripted nodes (real Connect
 * servers on loopback) answer RunTask: accepted, one line of output, the result, then they
 * hold their stream open until the test lets it end.
 */

/** What a scripted node saw of its RunTask calls. */
interface NodeCalls {
  /** Resolved by the test: the node's stream may end. */
  release: () => void;
  /** Whether the stream of its last call was still open (its handler not returned). */
  open: boolean;
  /** Whether the caller cancelled its last call before its handler returned. */
  cancelled: boolean;
  /** Holds the result back until the test resolves it (for a caller that leaves first). */
  holdResult: Promise<void>;
}

const calls = new Map<string, NodeCalls>();
const servers: ScriptedServer[] = [];
let dir: string;
let transport: FleetTransport;
let members: Membership;
let core: ManagerCore;

async function scriptedNode(name: string): Promise<string> {
  const state: NodeCalls = { release: () => undefined, open: false, cancelled: false, holdResult: Promise.resolve() };
  calls.set(name, state);
  const server = await startScriptedServer((router) =>
    router.service(TaskService, {
      async *runTask(request, context) {
        state.open = true;
        context.signal.addEventListener("abort", () => (state.open ? (state.cancelled = true) : undefined), { once: true });
        const view = { id: request.task?.id ?? "", node: name, command: request.task?.command ?? "" };
        yield create(RunTaskResponseSchema, { event: { case: "accepted", value: create(TaskResultSchema, { ...view, state: ProtoTaskState.IN_PROGRESS }) } });
        yield create(RunTaskResponseSchema, { event: { case: "output", value: { data: Buffer.from(`${name} says hi\n`) } } });
        await state.holdResult;
        yield create(RunTaskResponseSchema, { event: { case: "result", value: create(TaskResultSchema, { ...view, state: ProtoTaskState.FINISHED, exitStatus: 0 }) } });
        // The stream stays open after the result: a reply that waited for its end would wait here.
        await new Promise<void>((resolve) => {
          state.release = resolve;
          context.signal.addEventListener("abort", () => resolve(), { once: true });
        });
        state.open = false;
      },
    }),
  );
  servers.push(server);
  return server.url;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "drce-manager-run-ends-"));
  const logger = createLogger("silent");
  transport = createDirectTransport({ token: "" });
  members = createMembership({ dataDir: dir, listed: [], heartbeatMs: 60_000, nodeTimeoutMs: 180_000, transport, logger });
  await members.start();
  const idle = { usage: { cpu: 0, iowait: 0, vram: 0, rram: 0, disk: 0, processes: 0, threads: 0, loadavg: 0 }, balancing: "", freeSlots: 4, running: 0 };
  for (const name of ["a", "b"]) await members.register({ name, url: await scriptedNode(name), labels: {}, facts: undefined, report: idle });
  const record = createPlacementRecord({ dir: join(dir, "placements"), journalDir: join(dir, "placements-journal") });
  core = createManagerCore({ members, transport, record, placer: createPlacer({ mode: "round-robin", weights: {} }), eventHistory: 100, logger });
  await core.init();
}, 60_000);

afterAll(async () => {
  for (const state of calls.values()) state.release();
  await core?.shutdown(1000);
  await members?.close();
  transport?.close();
  for (const server of servers) await server.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** Reads a run to its end. */
async function runToEnd(run: AsyncIterable<RunEvent>): Promise<RunEvent[]> {
  const events: RunEvent[] = [];
  for await (const event of run) events.push(event);
  return events;
}

describe("an attached run through the manager", () => {
  it("ends with a node's result while the node's stream is still open, and lets that stream end without cancelling it", async () => {
    const events = await runToEnd(core.run(taskSpec({ id: "ends-1", command: "true", placement: { mode: "balanced", nodes: ["a"] } }), new AbortController().signal));
    expect(events.map((event) => event.kind)).toEqual(["accepted", "output", "result"]);
    expect(events.at(-1)?.kind === "result" && events.at(-1)).toMatchObject({ view: { placedOn: "a", status: { state: TaskState.Finished } } });
    const node = calls.get("a")!;
    expect(node.open).toBe(true);
    node.release();
    const deadline = Date.now() + 10_000;
    while (node.open && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(node.open).toBe(false);
    expect(node.cancelled).toBe(false);
  });

  it("gives a fan-out its merged result once every node's result came, though their streams are still open", async () => {
    const events = await runToEnd(core.run(taskSpec({ id: "ends-2", command: "true", placement: { mode: "all" } }), new AbortController().signal));
    expect(events.filter((event) => event.kind === "node-result").map((event) => event.kind === "node-result" && [event.result.node, event.result.status])).toEqual(
      expect.arrayContaining([
        ["a", "finished"],
        ["b", "finished"],
      ]),
    );
    expect(events.at(-1)?.kind).toBe("result");
    expect(calls.get("a")!.open && calls.get("b")!.open).toBe(true);
    for (const name of ["a", "b"]) calls.get(name)!.release();
  });

  it("cancels the node's call when its caller leaves before the result", async () => {
    const node = calls.get("b")!;
    let letResult!: () => void;
    node.holdResult = new Promise<void>((resolve) => (letResult = resolve));
    node.cancelled = false;
    const caller = new AbortController();
    const run = core.run(taskSpec({ id: "ends-3", command: "sleep 60", placement: { mode: "balanced", nodes: ["b"] } }), caller.signal)[Symbol.asyncIterator]();
    expect((await run.next()).value).toMatchObject({ kind: "accepted" });
    caller.abort();
    await run.return?.(undefined);
    const deadline = Date.now() + 10_000;
    while (!node.cancelled && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(node.cancelled).toBe(true);
    letResult();
  });
});
