import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { until } from "../helpers/node.js";
import { liveGroupMembers } from "../helpers/proc.js";

/*
 * Crash recovery with a real node process: the node is started as `drce serve` in a child
 * process, killed with SIGKILL (by the test, or by itself through the DRCE_TEST_CRASH_AT hook
 * at a write point), and restarted on the same data directory.
 */

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

interface ChildNode {
  readonly proc: ChildProcess;
  readonly url: string;
  readonly client: Client<typeof TaskService>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The node's log so far (JSON lines from stderr). */
  log(): string;
}

const started: ChildNode[] = [];
const dataDirs: string[] = [];
const groups = new Set<number>();


/** Starts `drce serve` on a random loopback port and waits for its "listening" log line. */
async function spawnNode(dataDir: string, crashAt?: string, shutdownGraceMs = 1000): Promise<ChildNode> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env["DRCE_TEST_CRASH_AT"];
  delete env["DRCE_TOKEN"];
  if (crashAt !== undefined) env["DRCE_TEST_CRASH_AT"] = crashAt;
  const proc = spawn(
    process.execPath,
    ["--import", "tsx", "src/main.ts", "serve", "--listen", "127.0.0.1:0", "--no-zmq", "--no-admin-zmq", "--log-level", "info", "--data-dir", dataDir, "--shutdown-grace", String(shutdownGraceMs)],
    { cwd: repoRoot, env, stdio: ["ignore", "ignore", "pipe"] },
  );
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  let log = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start in time; log:\n${log}`)), 60_000);
    let pending = "";
    proc.stderr!.setEncoding("utf8");
    proc.stderr!.on("data", (chunk: string) => {
      log += chunk;
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        try {
          const entry = JSON.parse(line) as { msg?: string; url?: string };
          if (entry.msg === "drce node listening" && typeof entry.url === "string") {
            clearTimeout(timer);
            resolve(entry.url);
          }
        } catch {
          // not JSON
        }
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`node exited before listening (code ${code}, signal ${signal}); log:\n${log}`));
    });
  });
  const client = createClient(TaskService, createConnectTransport({ baseUrl: url, httpVersion: "2" }));
  const node: ChildNode = { proc, url, client, exited, log: () => log };
  started.push(node);
  return node;
}

/** Waits for a node process to exit, with a deadline. */
async function exitOf(node: ChildNode, timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`node did not exit in time; log:\n${node.log()}`)), timeoutMs);
  });
  try {
    return await Promise.race([node.exited, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Stops a node gracefully. */
async function stopNode(node: ChildNode): Promise<void> {
  if (node.proc.exitCode !== null || node.proc.signalCode !== null) return;
  node.proc.kill("SIGTERM");
  await exitOf(node);
}

async function newDataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "drce-recovery-"));
  dataDirs.push(dir);
  return dir;
}

/** Every task directory's status.json, parsed (a parse failure fails the test). */
async function statusesOnDisk(dataDir: string): Promise<Map<string, { state: number; pid: number; pgid: number; procStartTicks: number }>> {
  const root = join(dataDir, "tasks");
  const result = new Map<string, { state: number; pid: number; pgid: number; procStartTicks: number }>();
  for (const name of await readdir(root)) {
    if (name.startsWith(".")) continue;
    const raw = await readFile(join(root, name, "status.json"), "utf8");
    result.set(name, JSON.parse(raw) as { state: number; pid: number; pgid: number; procStartTicks: number });
  }
  return result;
}

const knownLegacyStates = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);

afterAll(async () => {
  for (const node of started) {
    if (node.proc.exitCode === null && node.proc.signalCode === null) node.proc.kill("SIGKILL");
  }
  for (const pgid of groups) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // gone
    }
  }
  for (const dir of dataDirs) await rm(dir, { recursive: true, force: true });
});

// Sequential, with room for slow start-ups: each test starts node processes twice.
describe("recovery after the node is killed", { timeout: 120_000 }, () => {
  it("reports a task that was running as CRASHED with its output, and kills the orphan group", async () => {
    const dataDir = await newDataDir();
    const first = await spawnNode(dataDir);
    const id = "orphan-task";
    const reply = await first.client.submitTask({ task: create(TaskSpecSchema, { id, command: "echo before; sleep 300", mode: TaskMode.ASYNC }) });
    expect(reply.result!.id).toBe(id);
    const running = await until(
      () => first.client.fetchTask({ task: id }),
      (r) => r.result!.state === TaskState.IN_PROGRESS && Buffer.from(r.result!.stdout).toString() === "before\n",
      10_000,
      "task running with its first output",
    );
    const pgid = running.result!.pid;
    expect(pgid).toBeGreaterThan(0);
    groups.add(pgid);
    await until(() => liveGroupMembers(pgid), (m) => m.length >= 2, 5000, "shell and sleep in the task's group");
    // The API shows a spawn as soon as it is in memory; the kill must come after it is on disk
    // (a crash between fork and that write is the "spawned" crash point's window, tested below).
    await until(
      async () => (await statusesOnDisk(dataDir)).get(id),
      (s) => s?.state === 1 && s.pid === pgid && s.procStartTicks > 0,
      10_000,
      "the spawn recorded in status.json",
    );

    first.proc.kill("SIGKILL");
    expect((await exitOf(first)).signal).toBe("SIGKILL");
    // The task's processes outlive the node (their own process group).
    expect(liveGroupMembers(pgid).length).toBeGreaterThanOrEqual(1);

    const second = await spawnNode(dataDir);
    try {
      const checked = (await second.client.getTask({ task: id })).result!;
      expect(checked.state).toBe(TaskState.CRASHED);
      expect(checked.legacyState).toBe(5);
      expect(checked.errorMessage).not.toBe("");
      const fetched = (await second.client.fetchTask({ task: id })).result!;
      expect(Buffer.from(fetched.stdout).toString()).toBe("before\n");
      expect(fetched.stdoutSize).toBe(7n);
      await until(() => liveGroupMembers(pgid), (m) => m.length === 0, 5000, `orphan group killed by recovery (${checked.errorMessage})`);
      // The crash is on disk: another restart sees the same final state.
      const onDisk = await statusesOnDisk(dataDir);
      expect(onDisk.get(id)?.state).toBe(5);
      // The recovered node still runs tasks.
      const fresh = (await second.client.submitTask({ task: create(TaskSpecSchema, { command: "echo after" }) })).result!;
      expect(Buffer.from(fresh.stdout).toString()).toBe("after\n");
    } finally {
      await stopNode(second);
    }
  });

  for (const point of ["accepted", "spawned", "final"] as const) {
    it(`crash hook at "${point}": every status parses, states are known, nothing acknowledged is lost`, async () => {
      const dataDir = await newDataDir();
      const crashing = await spawnNode(dataDir, point);
      const id = `crash-${point}`;
      const command = point === "final" ? "echo done" : "echo done; sleep 300";
      let acknowledged = false;
      try {
        const reply = await crashing.client.submitTask({ task: create(TaskSpecSchema, { id, command, mode: TaskMode.ASYNC }) });
        acknowledged = reply.result!.id === id;
      } catch (error) {
        // The node died before it answered.
        expect(ConnectError.from(error).code).not.toBe(Code.InvalidArgument);
      }
      expect((await exitOf(crashing)).signal).toBe("SIGKILL");
      if (point === "accepted") expect(acknowledged).toBe(false); // the crash comes before the reply
      if (point === "final") expect(acknowledged).toBe(true); // an async reply precedes the end

      // What the dead node left: parseable statuses, in states recovery understands.
      const before = await statusesOnDisk(dataDir);
      expect([...before.keys()]).toEqual([id]);
      const left = before.get(id)!;
      expect(knownLegacyStates.has(left.state)).toBe(true);
      if (point === "accepted") expect(left.state).toBe(2);
      if (point === "spawned") {
        expect(left.state).toBe(1);
        expect(left.pid).toBeGreaterThan(0);
        expect(left.procStartTicks).toBeGreaterThan(0);
        groups.add(left.pgid || left.pid);
      }
      if (point === "final") expect(left.state).toBe(0);

      const restarted = await spawnNode(dataDir);
      try {
        const listed = (await restarted.client.listTasks({})).tasks.map((t) => t.id);
        if (acknowledged) expect(listed).toContain(id);
        // The request was durable before every crash point, so the task is known in all cases.
        const result = (await restarted.client.fetchTask({ task: id })).result!;
        if (point === "final") {
          expect(result.state).toBe(TaskState.FINISHED);
          expect(result.exitStatus).toBe(0);
          expect(Buffer.from(result.stdout).toString()).toBe("done\n");
        } else {
          expect(result.state).toBe(TaskState.CRASHED);
          expect(result.legacyState).toBe(5);
        }
        if (point === "spawned") {
          await until(() => liveGroupMembers(left.pgid || left.pid), (m) => m.length === 0, 5000, "orphan group killed by recovery");
        }
        const after = await statusesOnDisk(dataDir);
        for (const [taskId, status] of after) {
          expect(knownLegacyStates.has(status.state), taskId).toBe(true);
          expect(status.state, taskId).toBe(point === "final" ? 0 : 5);
        }
      } finally {
        await stopNode(restarted);
      }
    });
  }

  // BUG: core.shutdown (src/core/task-core.ts) races the running tasks against sleep(graceMs), a
  // timer that is neither cleared nor unref'd, so an idle node stays alive for the whole grace period.
  it("an idle node exits promptly on SIGTERM, well before its grace period", async () => {
    const dataDir = await newDataDir();
    const idle = await spawnNode(dataDir, undefined, 8000);
    const r = (await idle.client.submitTask({ task: create(TaskSpecSchema, { command: "echo hi" }) })).result!;
    expect(r.state).toBe(TaskState.FINISHED);
    const stopping = Date.now();
    idle.proc.kill("SIGTERM");
    const exit = await exitOf(idle, 15_000);
    expect(exit.code).toBe(0);
    expect(Date.now() - stopping).toBeLessThan(4000);
  });
});
