import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";
import { totalmem } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LimitsSchema, TaskMode, TaskSpecSchema, TaskState, type TaskResult } from "../../gen/drce/v1/task_pb.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * Resource limits end to end through a real node, over Connect and the legacy POST /drce:
 * start limits that the host cannot meet refuse the task (state 6, error 119, a message
 * naming the limit and the measured figure); run limits a task passes terminate it (119).
 * The unit tests (test/executor/limits.test.ts) cover every comparison against a synthetic
 * host; cpu_max and iowait_max are left to them, as a real host's CPU and iowait figures
 * cannot be forced here without loading the machine.
 */

type LimitsInit = MessageInitShape<typeof LimitsSchema>;
type LegacyItem = { state: number; error_code: number; error_message: string; pid: number; stdout: string; exit_status: number; id: number | string };

const uid = (prefix: string): string => `${prefix}-${randomBytes(4).toString("hex")}`;
const MiB = 1024 * 1024;
/** A percentage of the host's memory that is this many bytes. */
const percentOfRam = (bytes: number): number => (bytes / totalmem()) * 100;
/** A node one-liner (no shell) that allocates and touches `mib` MiB, then waits. */
const allocating = (mib: number): string[] => [process.execPath, "-e", `globalThis.b = Buffer.alloc(${mib} * 1024 * 1024, 1); setTimeout(() => {}, 60000)`];
const sleeping = (seconds: number): string[] => [process.execPath, "-e", `setTimeout(() => {}, ${seconds * 1000})`];
/** Larger than any disk or memory of this machine (2^60 bytes). */
const huge = 2 ** 60;

let node: TestNode;
let legacyId = Math.floor(Math.random() * 1_000_000) + 1_000_000;

beforeAll(async () => {
  node = await startNode({ sampleIntervalMs: 100 });
});
afterAll(async () => {
  await node?.stop();
});

const submitSync = async (limits: LimitsInit, command: string | string[] = "echo ran", id = uid("lim")): Promise<TaskResult> => {
  const spec = typeof command === "string" ? { id, command, limits, mode: TaskMode.SYNC } : { id, argv: command, limits, mode: TaskMode.SYNC };
  return (await node.client.submitTask({ task: create(TaskSpecSchema, spec) })).result!;
};

const postLegacy = async (data: object): Promise<LegacyItem> => {
  const id = legacyId++;
  const body = JSON.stringify({ type: 0, id, data: Buffer.from(JSON.stringify(data)).toString("base64") });
  const response = await fetch(`${node.url}/drce`, { method: "POST", body, headers: { "content-type": "application/json" } });
  expect(response.status).toBe(200);
  const items = (await response.json()) as LegacyItem[];
  expect(items).toHaveLength(1);
  expect(items[0]!.id).toBe(id);
  return items[0]!;
};

/** [case, Connect limits, legacy limits, message pattern with the measured figure] */
const startCases: readonly [string, LimitsInit, Record<string, number>, RegExp][] = [
  ["proc_max", { procMax: 1n }, { proc_max: 1 }, /^proc_max: (\d+) processes are running, above the limit 1$/],
  ["threads_max", { threadsMax: 1n }, { threads_max: 1 }, /^threads_max: (\d+) threads are running, above the limit 1$/],
  ["vram_free", { vramFree: 101 }, { vram_free: 101 }, /^vram_free: free virtual memory ([\d.]+)% is below the limit 101%$/],
  ["vram_free_min", { vramFreeMin: BigInt(huge) }, { vram_free_min: huge }, /^vram_free_min: free virtual memory (\d+) bytes is below the limit \d+$/],
  ["rram_free", { rramFree: 100.5 }, { rram_free: 100.5 }, /^rram_free: free real memory ([\d.]+)% is below the limit 100\.5%$/],
  ["rram_free_min", { rramFreeMin: BigInt(totalmem() + 1) }, { rram_free_min: totalmem() + 1 }, /^rram_free_min: free real memory (\d+) bytes is below the limit \d+$/],
  ["disk_free", { diskFree: 101 }, { disk_free: 101 }, /^disk_free: free disk space ([\d.]+)% is below the limit 101%$/],
  ["disk_free_min", { diskFreeMin: BigInt(huge) }, { disk_free_min: huge }, /^disk_free_min: free disk space (\d+) bytes is below the limit \d+$/],
];

describe.concurrent("start limits the host cannot meet", () => {
  for (const [name, limits, legacyLimits, message] of startCases) {
    it(`${name}: Connect answers NOT_SET with error 119 naming the limit and the measured figure; the command never runs`, async () => {
      const result = await submitSync(limits);
      expect(result.state).toBe(TaskState.NOT_SET);
      expect(result.legacyState).toBe(6);
      expect(result.errorCode).toBe(119);
      const match = message.exec(result.errorMessage);
      expect(match, result.errorMessage).not.toBeNull();
      expect(Number(match![1])).toBeGreaterThan(0);
      expect(result.pid).toBe(0);
      expect(Buffer.from(result.stdout).toString()).toBe("");
    });

    it(`${name}: the legacy POST /drce answers state 6, error 119, the same message`, async () => {
      const item = await postLegacy({ session: { tmode: 1 }, command: "echo ran", limits: legacyLimits });
      expect(item.state).toBe(6);
      expect(item.error_code).toBe(119);
      expect(item.error_message).toMatch(message);
      expect(item.pid).toBe(0);
      expect(item.stdout).toBe("");
    });
  }

  it("limits the host meets let the task run", async () => {
    const result = await submitSync({ procMax: 10_000_000n, threadsMax: 100_000_000n, rramFreeMin: 1n, diskFreeMin: 1n, vramFree: 0.001, rramFree: 0.001, diskFree: 0.001, cpuMax: 100, iowaitMax: 100 });
    expect(result.state).toBe(TaskState.FINISHED);
    expect(result.errorCode).toBe(0);
    expect(Buffer.from(result.stdout).toString()).toBe("ran\n");
    const item = await postLegacy({ session: { tmode: 1 }, command: "echo ran", limits: { proc_max: 10_000_000, rram_free_min: 1, disk_free: 0.001 } });
    expect(item).toMatchObject({ state: 0, error_code: 0, stdout: Buffer.from("ran\n").toString("base64") });
  });
});

describe.concurrent("run limits a task passes", () => {
  it("rram_usage_max: a task that touches 200 MiB against a 64 MiB cap is terminated with 119", async () => {
    const result = await submitSync({ rramUsageMax: percentOfRam(64 * MiB) }, allocating(200));
    expect(result.state).toBe(TaskState.TERMINATED);
    expect(result.errorCode).toBe(119);
    expect(result.errorMessage).toMatch(/^rram_usage_max: the task's real memory (\d+) bytes \([\d.]+% of the host's\) is above the limit [\d.]+%$/);
    const measured = Number(/memory (\d+) bytes/.exec(result.errorMessage)![1]);
    expect(measured).toBeGreaterThan(64 * MiB);
  });

  it("rram_usage_max: a task that stays under its cap finishes", async () => {
    const result = await submitSync({ rramUsageMax: percentOfRam(512 * MiB) }, [process.execPath, "-e", "setTimeout(() => console.log('done'), 700)"]);
    expect(result.state).toBe(TaskState.FINISHED);
    expect(result.errorCode).toBe(0);
    expect(Buffer.from(result.stdout).toString()).toBe("done\n");
  });

  it("vram_usage_max: a task whose virtual memory grows 200 MiB past what it started with is terminated with 119", async () => {
    // A node process reserves far more address space than it touches: measure one at rest,
    // then cap at that plus 100 MiB, which the allocating one passes and the resting one does not.
    const resting = uid("vram-rest");
    await node.client.submitTask({ task: create(TaskSpecSchema, { id: resting, argv: sleeping(30), mode: TaskMode.ASYNC }) });
    const rest = await until(async () => (await node.client.getTask({ task: resting, extended: true })).result!, (r) => (r.fields["TASK_VRAM"] ?? 0) > 0, 10_000, "a sample of the resting task");
    const cap = percentOfRam(rest.fields["TASK_VRAM"]! + 100 * MiB);

    const [grown, calm] = await Promise.all([submitSync({ vramUsageMax: cap }, allocating(200)), submitSync({ vramUsageMax: cap }, sleeping(0.7))]);
    await node.client.terminateTask({ task: resting });
    expect(grown.state).toBe(TaskState.TERMINATED);
    expect(grown.errorCode).toBe(119);
    expect(grown.errorMessage).toMatch(/^vram_usage_max: the task's virtual memory \d+ bytes \([\d.]+% of the host's real memory\) is above the limit [\d.]+%$/);
    expect(calm.state).toBe(TaskState.FINISHED);
    expect(calm.errorCode).toBe(0);
  });

  it("disk_usage_max_bytes: a task that writes 5 MB against a 1 MB cap is terminated with 119; one that writes 1 kB finishes", async () => {
    const [big, small] = await Promise.all([
      submitSync({ diskUsageMaxBytes: 1_000_000n }, "head -c 5000000 /dev/zero > big; sleep 30"),
      submitSync({ diskUsageMaxBytes: 1_000_000n }, "head -c 1000 /dev/zero > small; sleep 0.5; echo ok"),
    ]);
    expect(big.state).toBe(TaskState.TERMINATED);
    expect(big.errorCode).toBe(119);
    const match = /^disk_usage_max_bytes: the task's files (\d+) bytes are above the limit 1000000$/.exec(big.errorMessage);
    expect(match, big.errorMessage).not.toBeNull();
    expect(Number(match![1])).toBeGreaterThan(1_000_000);
    expect(small.state).toBe(TaskState.FINISHED);
    expect(Buffer.from(small.stdout).toString()).toBe("ok\n");
  });

  it("disk_usage_max_bytes over the legacy POST /drce: state 4, error 119, the limit named", async () => {
    const item = await postLegacy({ session: { tmode: 1 }, command: "head -c 3000000 /dev/zero > big; sleep 30", limits: { disk_usage_max_bytes: 500000 } });
    expect(item.state).toBe(4);
    expect(item.error_code).toBe(119);
    expect(item.error_message).toMatch(/^disk_usage_max_bytes: the task's files \d+ bytes are above the limit 500000$/);
  });

  it("rram_usage_max over the legacy POST /drce: state 4, error 119, the limit named", async () => {
    const cap = percentOfRam(64 * MiB);
    const item = await postLegacy({ session: { tmode: 1 }, command: `'${process.execPath}' -e 'globalThis.b = Buffer.alloc(200 * 1024 * 1024, 1); setTimeout(() => {}, 60000)'`, limits: { rram_usage_max: cap } });
    expect(item.state).toBe(4);
    expect(item.error_code).toBe(119);
    expect(item.error_message).toMatch(/^rram_usage_max: /);
  });
});
