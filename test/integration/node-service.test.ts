import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { randomBytes } from "node:crypto";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeService, type ResourceReport, type ResourceUsage, type TaskModeStats } from "../../gen/drce/v1/node_service_pb.js";
import { SessionType, TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * Integration tests of the Connect NodeService: a real node on 127.0.0.1:0 sampling the
 * host every 100 ms, real tasks, every wait a poll with a deadline.
 */

type SpecInit = MessageInitShape<typeof TaskSpecSchema>;
const uid = (prefix: string): string => `${prefix}-${randomBytes(4).toString("hex")}`;

let node: TestNode;
let admin: Client<typeof NodeService>;

beforeAll(async () => {
  node = await startNode({ sampleIntervalMs: 100, reportHistory: 500, maxConcurrent: 6, maxQueue: 77, allowEnv: ["LD_PRELOAD"], name: "admin-test" });
  admin = createClient(NodeService, createConnectTransport({ baseUrl: node.url, httpVersion: "2" }));
}, 30_000);

afterAll(async () => {
  await node?.stop();
});

const submit = async (spec: SpecInit) => (await node.client.submitTask({ task: create(TaskSpecSchema, spec) })).result!;
const stats = async () => (await admin.getNodeStats({})).stats!;
const mode = async (which: "sync" | "async"): Promise<TaskModeStats> => (await stats())[which]!;

/** Collects `count` reports of a stream started with `request`, then cancels it. */
async function takeReports(request: { afterSeq?: bigint; fromStart?: boolean }, count: number): Promise<ResourceReport[]> {
  const controller = new AbortController();
  const reports: ResourceReport[] = [];
  try {
    for await (const message of admin.watchResourceReports(request, { signal: controller.signal, timeoutMs: 30_000 })) {
      reports.push(message.report!);
      if (reports.length >= count) break;
    }
  } finally {
    controller.abort();
  }
  return reports;
}

const usageFigures = (u: ResourceUsage): number[] => [u.cpu, u.iowait, u.vram, u.rram, u.disk, u.processes, u.threads, u.loadavg];

describe("NodeService", () => {
  it("GetNodeInfo names the node and reports every limit from its configuration", async () => {
    const before = Date.now();
    const { info } = await admin.getNodeInfo({});
    expect(info).toMatchObject({ name: "admin-test", host: "127.0.0.1", port: Number(new URL(node.url).port), role: "data", version: "0.1.0" });
    expect(Number(info!.startedAtMs)).toBeLessThanOrEqual(before);
    expect(Number(info!.uptimeMs)).toBeGreaterThanOrEqual(0);
    expect(Number(info!.startedAtMs) + Number(info!.uptimeMs)).toBeGreaterThanOrEqual(before - 1);
    expect(info!.limits).toMatchObject({
      maxConcurrent: 6,
      maxQueue: 77,
      maxOutputBytes: 256n * 1024n * 1024n,
      maxTaskMs: 0n,
      maxRequestBytes: 16n * 1024n * 1024n,
      maxFileBytes: 16n * 1024n * 1024n,
      sampleIntervalMs: 100,
      eventHistory: 10_000,
      reportHistory: 500,
      allowedDirs: [],
      allowedEnv: ["LD_PRELOAD"],
      tokenRequired: false,
    });
    expect(info!.zmqEndpoint).toBe("");
    expect(info!.adminZmqEndpoint).toBe("");
  });

  it("GetNodeStats counts sync and async tasks, their failures, times, sizes and usage", async () => {
    const sync0 = await mode("sync");
    const async0 = await mode("async");

    const ok = await submit({ command: "cat", input: Buffer.from("0123456789") });
    expect(ok.exitStatus).toBe(0);
    const failed = await submit({ command: "printf abc; exit 3" });
    expect(failed.exitStatus).toBe(3);
    const sync1 = await until(() => mode("sync"), (m) => m.tasks >= sync0.tasks + 2n, 10_000, "two more sync tasks");
    expect(sync1.tasks - sync0.tasks).toBe(2n);
    expect(sync1.failed - sync0.failed).toBe(1n);
    expect(sync1.timeMs!.count).toBe(sync0.timeMs!.count + 2n);
    expect(sync1.inputBytes!.max).toBeGreaterThanOrEqual(10);
    expect(sync1.outputBytes!.max).toBeGreaterThanOrEqual(10);
    expect(sync1.outputBytes!.min).toBeLessThanOrEqual(3);
    expect(sync1.perMinute!.max).toBeGreaterThanOrEqual(2);

    // An async task that lives long enough to be sampled, and one that fails.
    const id = uid("async-sleep");
    await submit({ id, command: "sleep 1", mode: TaskMode.ASYNC });
    await submit({ id: uid("async-fail"), command: "exit 7", mode: TaskMode.ASYNC });
    const async1 = await until(() => mode("async"), (m) => m.tasks >= async0.tasks + 2n, 20_000, "two more async tasks");
    expect(async1.tasks - async0.tasks).toBe(2n);
    expect(async1.failed - async0.failed).toBe(1n);
    expect(async1.timeMs!.max).toBeGreaterThanOrEqual(900);
    expect(async1.memoryBytes!.count).toBeGreaterThanOrEqual(1n);
    expect(async1.memoryBytes!.max).toBeGreaterThan(0);
    expect(async1.cpuPercent!.count).toBeGreaterThanOrEqual(1n);
    expect(async1.cpuPercent!.min).toBeGreaterThanOrEqual(0);
    // The sync figures did not move.
    expect((await mode("sync")).tasks).toBe(sync1.tasks);
  });

  it("GetResourceUsage gives the cached sample: seven percentages in 0..100, the load average, an 8-number balancing string", async () => {
    const response = await admin.getResourceUsage({});
    const figures = usageFigures(response.usage!);
    for (const value of figures.slice(0, 7)) {
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThanOrEqual(100);
    }
    expect(figures[7]).toBeGreaterThanOrEqual(0);
    expect(response.usage!.rram).toBeGreaterThan(0);
    expect(response.usage!.processes).toBeGreaterThan(0);
    const parts = response.balancing.split(",");
    expect(parts).toHaveLength(8);
    expect(parts.map(Number)).toEqual(figures);
    expect(Number(response.sampledAtMs)).toBeGreaterThan(Date.now() - 60_000);
    expect(Number(response.host!.memTotalBytes)).toBeGreaterThan(0);
    expect(response.host!.cpuCount).toBeGreaterThan(0);
  });

  it("ListTaskInfos gives each task's stored status as JSON and its status file's mtime", async () => {
    const id = uid("info");
    await submit({ id, command: "echo hi" });
    const { tasks } = await admin.listTaskInfos({});
    const entry = tasks.find((t) => t.id === id);
    expect(entry).toBeDefined();
    const info = JSON.parse(entry!.info) as Record<string, unknown>;
    expect(info).toMatchObject({ id, state: 0, exitStatus: 0, stdoutSize: 3, mode: 1 });
    const mtime = Math.floor((await stat(join(node.dataDir, "tasks", id, "status.json"))).mtimeMs);
    expect(Number(entry!.modifiedAtMs)).toBe(mtime);
    // The state filter works as ListTasks' does.
    const running = await admin.listTaskInfos({ states: [TaskState.IN_PROGRESS] });
    expect(running.tasks.some((t) => t.id === id)).toBe(false);
    const finished = await admin.listTaskInfos({ states: [TaskState.FINISHED] });
    expect(finished.tasks.some((t) => t.id === id)).toBe(true);
  });

  it("ListTaskInfos never shows an SSH password", async () => {
    const id = uid("ssh-secret");
    // Nothing listens on port 1: the task fails, but its status is stored.
    await submit({ id, command: "true", session: { type: SessionType.SSH, host: "127.0.0.1", port: 1, user: "nobody", password: "hunter2-secret" } });
    const { tasks } = await admin.listTaskInfos({});
    const entry = tasks.find((t) => t.id === id);
    expect(entry).toBeDefined();
    expect(entry!.info).not.toContain("hunter2-secret");
  });

  it("ListTasks already carries each task's id, start date, state and mode", async () => {
    const id = uid("ls");
    await submit({ id, command: "true", mode: TaskMode.ASYNC });
    const { tasks } = await node.client.listTasks({});
    const t = tasks.find((x) => x.id === id);
    expect(t).toMatchObject({ id, mode: TaskMode.ASYNC });
    expect(t!.startedAtMs).toBeGreaterThan(0n);
    expect(t!.state).not.toBe(TaskState.UNSPECIFIED);
  });

  it("WatchResourceReports streams numbered reports, one per host sample", async () => {
    const reports = await takeReports({}, 3);
    expect(reports).toHaveLength(3);
    for (let i = 1; i < reports.length; i++) {
      expect(reports[i]!.seq).toBe(reports[i - 1]!.seq + 1n);
      expect(reports[i]!.timeUnixMs).toBeGreaterThanOrEqual(reports[i - 1]!.timeUnixMs);
    }
    for (const r of reports) {
      expect(r.balancing.split(",")).toHaveLength(8);
      expect(r.balancing.split(",").map(Number)).toEqual(usageFigures(r.usage!));
    }
  });

  it("WatchResourceReports resumes after a sequence number with no gap", async () => {
    const first = await takeReports({ fromStart: true }, 4);
    const last = first[first.length - 1]!.seq;
    // Let more reports be published while nobody watches.
    await until(() => node.app.reports.lastSeq, (seq) => seq >= Number(last) + 3, 20_000, "three more reports");
    const resumed = await takeReports({ afterSeq: last }, 3);
    expect(resumed.map((r) => r.seq)).toEqual([last + 1n, last + 2n, last + 3n]);
  });

  it("WatchResourceReports with stop_at_end ends after the kept reports", async () => {
    await until(() => node.app.reports.lastSeq, (seq) => seq >= 2, 20_000, "two reports");
    const upTo = BigInt(node.app.reports.lastSeq);
    const seqs: bigint[] = [];
    for await (const message of admin.watchResourceReports({ fromStart: true, stopAtEnd: true }, { timeoutMs: 30_000 })) seqs.push(message.report!.seq);
    expect(seqs.length).toBeGreaterThanOrEqual(2);
    expect(seqs.slice(1).every((s, i) => s === seqs[i]! + 1n)).toBe(true);
    expect(seqs[seqs.length - 1]!).toBeGreaterThanOrEqual(upTo);
    // After the last one, nothing: the stream ended at once.
    const after = seqs[seqs.length - 1]!;
    const none: bigint[] = [];
    for await (const message of admin.watchResourceReports({ afterSeq: after + 1000n, stopAtEnd: true }, { timeoutMs: 30_000 })) none.push(message.report!.seq);
    expect(none).toEqual([]);
  });

  it("requires the token on every NodeService RPC when the node has one", async () => {
    const guarded = await startNode({ token: "admin-secret-token" });
    try {
      const anonymous = createClient(NodeService, createConnectTransport({ baseUrl: guarded.url, httpVersion: "2" }));
      const codeOf = async (call: Promise<unknown>): Promise<Code | "ok"> =>
        call.then(
          () => "ok" as const,
          (error: unknown) => ConnectError.from(error).code,
        );
      expect(await codeOf(anonymous.getNodeInfo({}))).toBe(Code.Unauthenticated);
      expect(await codeOf(anonymous.getNodeStats({}))).toBe(Code.Unauthenticated);
      expect(await codeOf(anonymous.getResourceUsage({}))).toBe(Code.Unauthenticated);
      expect(await codeOf(anonymous.listTaskInfos({}))).toBe(Code.Unauthenticated);
      const authorized = createClient(
        NodeService,
        createConnectTransport({
          baseUrl: guarded.url,
          httpVersion: "2",
          interceptors: [(next) => (request) => (request.header.set("authorization", "Bearer admin-secret-token"), next(request))],
        }),
      );
      const { info } = await authorized.getNodeInfo({});
      expect(info!.limits!.tokenRequired).toBe(true);
      expect(JSON.stringify(info, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))).not.toContain("admin-secret-token");
    } finally {
      await guarded.stop();
    }
  });
});
