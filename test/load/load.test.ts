import { create } from "@bufbuild/protobuf";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { Agent, request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { until } from "../helpers/node.js";
import { cpuSecondsOf, familyOf, memoryOf, openFiles, spawnNodeProcess, type NodeProcess } from "../helpers/node-process.js";

/*
 * The load test: 10,000 trivial tasks (`true`) through the Connect API and 10,000 through the
 * legacy HTTP gateway, 64 in flight at once, against a real node process running 64 tasks at
 * a time. Every task must end FINISHED with exit 0 (the node adds no failures of its own);
 * afterwards the node's open file descriptors are back near their baseline, it has no zombie
 * children, its RSS is back near its baseline, and it holds no task data (every task asked
 * for cleanup). Run with `npm run test:load`; it prints the figures.
 */

const tasksPerApi = Number(process.env["DRCE_LOAD_TASKS"] ?? 10_000);
const inFlight = 64;
const MiB = 1024 * 1024;

let node: NodeProcess;

beforeAll(async () => {
  node = await spawnNodeProcess(["--max-concurrent", String(inFlight), "--max-queue", String(4 * inFlight)]);
});

afterAll(async () => {
  await node?.stop();
});

/** A task that has not answered in this long counts as a failure (a hang, not a slow machine). */
const taskDeadlineMs = 120_000;

/**
 * Runs `count` jobs with at most `inFlight` at once, printing progress every 15 s; returns the
 * failures' descriptions.
 */
async function runAll(what: string, count: number, job: (index: number) => Promise<string | undefined>): Promise<{ failures: string[]; seconds: number }> {
  const failures: string[] = [];
  let next = 0;
  let done = 0;
  const started = process.hrtime.bigint();
  const progress = setInterval(() => console.log(`${what}: ${done}/${count} done, ${failures.length} failures`), 15_000);
  try {
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        for (let index = next++; index < count; index = next++) {
          let timer: NodeJS.Timeout | undefined;
          const deadline = new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`task ${index}: no answer in ${taskDeadlineMs} ms`), taskDeadlineMs)));
          const failure = await Promise.race([job(index).catch((error: unknown) => `task ${index}: ${String(error)}`), deadline]);
          clearTimeout(timer);
          done++;
          if (failure !== undefined) failures.push(failure);
        }
      }),
    );
  } finally {
    clearInterval(progress);
  }
  return { failures, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

/** One legacy set request over HTTP/1.1 keep-alive; resolves with the reply body. */
function postLegacy(agent: Agent, body: string): Promise<{ status: number; body: string }> {
  const url = new URL(`${node.url}/drce`);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const connectTask = (): Promise<string | undefined> =>
  node.client.submitTask({ task: create(TaskSpecSchema, { command: "true", cleanup: true }) }).then(({ result }) =>
    result?.state === TaskState.FINISHED && result.exitStatus === 0 && result.errorCode === 0
      ? undefined
      : `task ${result?.id}: state ${result?.state}, exit ${result?.exitStatus}, error ${result?.errorCode} ${result?.errorMessage}`,
  );

const legacyData = Buffer.from(JSON.stringify({ session: { tmode: 1, cleanup: 1 }, command: "true" })).toString("base64");

const legacyTask = (agent: Agent, index: number): Promise<string | undefined> =>
  postLegacy(agent, JSON.stringify({ type: 0, id: 900_000 + index, data: legacyData })).then(({ status, body }) => {
    const [item] = JSON.parse(body) as { id: number; state: number; error_code: number; exit_status: number; error_message: string }[];
    return status === 200 && item?.id === 900_000 + index && item.state === 0 && item.exit_status === 0 && item.error_code === 0
      ? undefined
      : `legacy task ${index}: HTTP ${status}, ${body.slice(0, 300)}`;
  });

/** The node's figures: open descriptors, RSS, task processes, zombie children, CPU seconds. */
function figures(): { fds: number; rss: number; children: number; zombies: number; cpu: number } {
  // Task processes (children of the node's spawner) lead their own groups; the spawner and
  // the esbuild service that tsx starts stay in the node's.
  const family = familyOf(node.pid);
  const spawners = family.filter((p) => p.ppid === node.pid && p.pgid !== p.pid);
  return {
    fds: openFiles(node.pid).length,
    rss: memoryOf(node.pid).rss,
    children: family.filter((c) => c.pgid === c.pid).length,
    zombies: family.filter((c) => c.state === "Z").length,
    cpu: cpuSecondsOf(node.pid) + spawners.reduce((sum, p) => sum + cpuSecondsOf(p.pid), 0),
  };
}

describe(`load: ${tasksPerApi} tasks through Connect and ${tasksPerApi} through the legacy HTTP gateway, ${inFlight} at once`, () => {
  it("runs every task to FINISHED/exit 0, and leaves descriptors, children, memory and the data dir as they were", async () => {
    let agent = new Agent({ keepAlive: true, maxSockets: inFlight });
    try {
      // Warm up both paths so that lazily opened resources (HTTP/2 session, keep-alive
      // sockets, pools) are part of the baseline.
      const warm = await runAll("warm-up", inFlight * 2, async (i) => (i % 2 === 0 ? connectTask() : legacyTask(agent, 1_000_000 + i)));
      expect(warm.failures).toEqual([]);
      // The test's own keep-alive sockets are closed before each measurement.
      agent.destroy();
      await until(figures, (f) => f.children === 0 && f.zombies === 0, 30_000, "the warm-up's tasks to be reaped");
      const before = figures();

      agent = new Agent({ keepAlive: true, maxSockets: inFlight });
      const connect = await runAll("Connect", tasksPerApi, () => connectTask());
      const legacy = await runAll("legacy HTTP", tasksPerApi, (i) => legacyTask(agent, i));
      const busy = figures();
      agent.destroy();

      // Descriptors and children settle once the last tasks' pipes are closed and reaped.
      const after = await until(figures, (f) => f.children === 0 && f.zombies === 0 && f.fds <= before.fds + 8, 30_000, "the node's descriptors and children to settle");
      const taskDirs = (await readdir(join(node.dataDir, "tasks")).catch(() => [])).filter((name) => !name.startsWith("."));
      const listed = (await node.client.listTasks({})).tasks.length;

      const rate = (n: number, s: number): string => `${n} tasks in ${s.toFixed(1)} s (${(n / s).toFixed(0)} tasks/s)`;
      console.log(
        [
          `load figures (${inFlight} in flight, --max-concurrent ${inFlight}):`,
          `  Connect SubmitTask (sync, cleanup): ${rate(tasksPerApi, connect.seconds)}, ${connect.failures.length} failures`,
          `  legacy HTTP POST /drce (sync, cleanup): ${rate(tasksPerApi, legacy.seconds)}, ${legacy.failures.length} failures`,
          `  open fds: ${before.fds} before, ${busy.fds} right after (with the ${inFlight} keep-alive connections of the test), ${after.fds} settled`,
          `  RSS: ${(before.rss / MiB).toFixed(1)} MiB before, ${(busy.rss / MiB).toFixed(1)} MiB right after, ${(after.rss / MiB).toFixed(1)} MiB settled`,
          `  node and spawner CPU: ${(busy.cpu - before.cpu).toFixed(1)} s for ${2 * tasksPerApi} tasks (${(((busy.cpu - before.cpu) / (2 * tasksPerApi)) * 1000).toFixed(2)} ms per task)`,
          `  task processes left: ${after.children}, zombie children: ${after.zombies}; task dirs left: ${taskDirs.length}; tasks listed: ${listed}`,
        ].join("\n"),
      );

      expect(connect.failures.slice(0, 5)).toEqual([]);
      expect(legacy.failures.slice(0, 5)).toEqual([]);
      expect(after.zombies).toBe(0);
      expect(after.children).toBe(0);
      expect(after.fds).toBeLessThanOrEqual(before.fds + 8);
      expect(after.rss).toBeLessThan(before.rss + 128 * MiB);
      expect(taskDirs).toEqual([]);
      expect(listed).toBe(0);
      // The node still answers.
      expect((await node.client.submitTask({ task: create(TaskSpecSchema, { command: "echo still-here" }) })).result?.stdout).toEqual(new TextEncoder().encode("still-here\n"));
    } finally {
      agent.destroy();
    }
  });
});
