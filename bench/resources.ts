/*
 * What resource accounting costs, measured on real nodes started as child processes:
 *  1. GetTask extended (usage and HOST_* fields, output read back) against a simple GetTask,
 *     with one task running: median and p99 over many calls, alternated so drift hits both.
 *  2. The node's own CPU time over an idle stretch with the host sampled every 1000 ms,
 *     against a node whose sampling interval is an hour (sampling effectively off).
 *  3. The cost of one host sample, taken in this process.
 *
 * Run: node --import tsx bench/resources.ts [--calls 500] [--idle-seconds 30]
 */
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { spawn, type ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { TaskMode, TaskSpecSchema, TaskState } from "../gen/drce/v1/task_pb.js";
import { TaskService } from "../gen/drce/v1/task_service_pb.js";
import { createHostSampler } from "../src/executor/host-sampler.js";

const { values } = parseArgs({ options: { calls: { type: "string" }, "idle-seconds": { type: "string" } } });
const calls = Number(values.calls ?? 500);
const idleSeconds = Number(values["idle-seconds"] ?? 30);
const clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

interface ChildNode {
  readonly child: ChildProcess;
  readonly url: string;
  readonly dataDir: string;
  stop(): Promise<void>;
}

/** Starts `drce serve` as a child process on 127.0.0.1:0 and waits for its URL. */
async function startChildNode(extraArgs: string[]): Promise<ChildNode> {
  const dataDir = await mkdtemp(join(tmpdir(), "drce-bench-"));
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "serve", "--listen", "127.0.0.1:0", "--no-zmq", "--no-admin-zmq", "--data-dir", dataDir, "--log-level", "info", ...extraArgs], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = "";
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString("utf8");
      const match = /"url":"(http:\/\/[^"]+)"/.exec(buffered);
      if (match !== null) {
        child.stderr!.off("data", onData);
        child.stderr!.resume(); // keep draining: task logs must never block the node
        resolve(match[1]!);
      }
    };
    child.stderr!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`node exited with ${code}: ${buffered}`)));
  });
  return {
    child,
    url,
    dataDir,
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** utime + stime of a process, in ms, from /proc/<pid>/stat. */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "latin1");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the command name: field 14 (utime) and 15 (stime) of proc(5) are indexes 11 and 12 here.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function summary(samples: number[]): { median: number; p99: number; mean: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { median: percentile(sorted, 50), p99: percentile(sorted, 99), mean: samples.reduce((s, v) => s + v, 0) / samples.length };
}

const ms = (value: number): string => `${value.toFixed(3)} ms`;

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")).join("\n");
}

async function measureChecks(): Promise<string> {
  const node = await startChildNode(["--sample-interval-ms", "1000"]);
  try {
    const client = createClient(TaskService, createConnectTransport({ baseUrl: node.url, httpVersion: "2" }));
    await client.submitTask({ task: create(TaskSpecSchema, { id: "bench-running", command: "sleep 600", mode: TaskMode.ASYNC }) });
    for (;;) {
      const state = (await client.getTask({ task: "bench-running" })).result!.state;
      if (state === TaskState.IN_PROGRESS) break;
      await sleep(20);
    }
    await sleep(1500); // let a usage sample of the task land, so the extended check has figures
    const simple: number[] = [];
    const extended: number[] = [];
    for (let i = 0; i < 50; i++) {
      await client.getTask({ task: "bench-running" });
      await client.getTask({ task: "bench-running", extended: true });
    }
    for (let i = 0; i < calls; i++) {
      // Alternate which goes first, so neither always follows the other.
      const order = i % 2 === 0 ? [false, true] : [true, false];
      for (const ext of order) {
        const started = performance.now();
        await client.getTask({ task: "bench-running", extended: ext });
        (ext ? extended : simple).push(performance.now() - started);
      }
    }
    await client.terminateTask({ task: "bench-running" });
    const s = summary(simple);
    const e = summary(extended);
    return table([
      ["GetTask (one task running)", "median", "p99", "mean"],
      [`simple (${calls} calls)`, ms(s.median), ms(s.p99), ms(s.mean)],
      [`extended (${calls} calls)`, ms(e.median), ms(e.p99), ms(e.mean)],
      ["extended - simple", ms(e.median - s.median), ms(e.p99 - s.p99), ms(e.mean - s.mean)],
    ]);
  } finally {
    await node.stop();
  }
}

async function measureIdle(): Promise<string> {
  const [sampled, quiet] = await Promise.all([startChildNode(["--sample-interval-ms", "1000"]), startChildNode(["--sample-interval-ms", "3600000"])]);
  try {
    await sleep(3000); // past start-up work (module loading, JIT)
    const before = await Promise.all([cpuMs(sampled.child.pid!), cpuMs(quiet.child.pid!)]);
    await sleep(idleSeconds * 1000);
    const after = await Promise.all([cpuMs(sampled.child.pid!), cpuMs(quiet.child.pid!)]);
    const used = [after[0] - before[0], after[1] - before[1]];
    const share = (v: number): string => `${((v / (idleSeconds * 1000)) * 100).toFixed(3)} %`;
    return table([
      [`idle node, ${idleSeconds} s`, "CPU time", "of one core"],
      ["host sampled every 1000 ms", `${used[0]!.toFixed(0)} ms`, share(used[0]!)],
      ["sampling effectively off (1 h)", `${used[1]!.toFixed(0)} ms`, share(used[1]!)],
      ["difference per host sample", `${((used[0]! - used[1]!) / idleSeconds).toFixed(2)} ms`, ""],
    ]);
  } finally {
    await Promise.all([sampled.stop(), quiet.stop()]);
  }
}

async function measureSample(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "drce-bench-"));
  try {
    const sampler = createHostSampler({ diskPath: dir, intervalMs: 1000 });
    await sampler.refresh();
    const times: number[] = [];
    for (let i = 0; i < 50; i++) {
      const started = performance.now();
      const snapshot = await sampler.refresh();
      times.push(performance.now() - started);
      if (i === 49) process.stdout.write(`(host with ${snapshot.processes} processes, ${snapshot.threads} threads)\n`);
    }
    const t = summary(times);
    return table([
      ["one host sample (in process)", "median", "p99"],
      ["refresh() x 50", ms(t.median), ms(t.p99)],
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

console.log(await measureChecks());
console.log();
console.log(await measureSample());
console.log();
console.log(await measureIdle());
