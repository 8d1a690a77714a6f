/*
 * The time a manager adds to one forwarded task: one data node and one manager listing it
 * (`drce serve`, each its own process on loopback, as bench/fanout.ts starts them), then
 * SubmitTask of `true`, sync and async, and RunTask of `true` (as `drce run -- true` sends
 * it), sent to the node directly and through the manager, alternating task by task so that
 * the load other programs put on the machine moves both alike. Prints the medians and p90s
 * of each, what the manager adds at the median, and the manager's CPU per forwarded task
 * (user + system of all its threads, from /proc, over each kind's tasks).
 *
 * Run: node --import tsx bench/manager-overhead.ts [--tasks N] [--profile DIR]
 *   --tasks: tasks of each kind (default 200); --profile: `node --cpu-prof` on the manager
 *   and the node, their .cpuprofile files written to DIR (see bench/profile-summary.ts).
 * The last line of stdout is the figures as JSON.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClusterNodeState, NodeService } from "../gen/drce/v1/node_service_pb.js";
import { TaskMode, TaskSpecSchema, TaskState } from "../gen/drce/v1/task_pb.js";
import { TaskService } from "../gen/drce/v1/task_service_pb.js";
import { processCpuMs, quantile, root, sleep, startBenchNode, type BenchNode } from "./lib.js";

const flag = process.argv.indexOf("--tasks");
const tasks = flag === -1 ? 200 : Number(process.argv[flag + 1]);
const profileAt = process.argv.indexOf("--profile");
const profileFlags = (name: string): string[] => (profileAt === -1 ? [] : ["--cpu-prof", "--cpu-prof-dir", join(process.argv[profileAt + 1]!, name)]);
const log = (text: string): void => void process.stderr.write(`manager-overhead: ${text}\n`);

/** One SubmitTask of `true` in a mode, to its reply, in ms. */
async function submitTrue(client: Client<typeof TaskService>, mode: TaskMode): Promise<number> {
  const started = performance.now();
  const reply = await client.submitTask({ task: create(TaskSpecSchema, { command: "true", mode }) });
  const ms = performance.now() - started;
  const want = mode === TaskMode.SYNC ? [TaskState.FINISHED] : [TaskState.NEW, TaskState.QUEUED, TaskState.IN_PROGRESS, TaskState.FINISHED];
  if (!want.includes(reply.result?.state ?? TaskState.UNSPECIFIED)) throw new Error(`SubmitTask true answered state ${reply.result?.state}`);
  return ms;
}

/** One RunTask of `true`, from the call to the end of its stream, in ms. */
async function runTrue(client: Client<typeof TaskService>): Promise<number> {
  const started = performance.now();
  let state = TaskState.UNSPECIFIED;
  for await (const message of client.runTask({ task: create(TaskSpecSchema, { command: "true" }) })) {
    if (message.event.case === "result") state = message.event.value.state;
  }
  const ms = performance.now() - started;
  if (state !== TaskState.FINISHED) throw new Error(`RunTask true ended in state ${state}`);
  return ms;
}

/** The manager's forwarding time so far (its dispatch histogram): seconds summed, and the count. */
async function dispatched(url: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string): number => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
  return { sum: value("drce_cluster_dispatch_seconds_sum"), count: value("drce_cluster_dispatch_seconds_count") };
}

/** Polls the manager's node list until its node is up, or fails at the deadline. */
async function waitForNode(url: string): Promise<void> {
  const client = createClient(NodeService, createConnectTransport({ baseUrl: url, httpVersion: "2" }));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const up = await client
      .listNodes({})
      .then((reply) => reply.nodes.some((node) => node.state === ClusterNodeState.UP))
      .catch(() => false); // not answering yet: the loop polls again until the deadline
    if (up) return;
    if (Date.now() > deadline) throw new Error("the node is not up at the manager after 60 s");
    await sleep(100);
  }
}

const work = await mkdtemp(join(tmpdir(), "drce-bench-manager-"));
let node: BenchNode | undefined;
let manager: BenchNode | undefined;
const figures: Record<string, number[]> = { directSync: [], managerSync: [], directAsync: [], managerAsync: [], directRun: [], managerRun: [] };
// Mean ms from the manager's forwarding to the node's reply, per mode: what the node took as the manager saw it.
const forwardMs: Record<string, number> = {};
// The manager's CPU (user + system, all its threads, from /proc) per forwarded task, per mode.
const managerCpuMs: Record<string, number> = {};
try {
  execFileSync(process.execPath, ["bin/build.js"], { cwd: root, stdio: "inherit" });
  node = await startBenchNode({ dataDir: join(work, "node"), nodeFlags: profileFlags("node"), args: ["--name", "node-1"] });
  manager = await startBenchNode({ dataDir: join(work, "manager"), nodeFlags: profileFlags("manager"), args: ["--name", "manager", "--role", "manager", "--node", node.url] });
  await waitForNode(manager.url);
  const direct = node.client;
  const through = manager.client;
  for (let i = 0; i < 20; i++) {
    await submitTrue(direct, TaskMode.SYNC);
    await submitTrue(through, TaskMode.SYNC);
    await submitTrue(direct, TaskMode.ASYNC);
    await submitTrue(through, TaskMode.ASYNC);
    await runTrue(direct);
    await runTrue(through);
  }
  const managerPid = manager.pid;
  let before = await dispatched(manager.url);
  let cpuBefore = processCpuMs(managerPid);
  for (let i = 0; i < tasks; i++) {
    figures["directSync"]!.push(await submitTrue(direct, TaskMode.SYNC));
    figures["managerSync"]!.push(await submitTrue(through, TaskMode.SYNC));
  }
  let after = await dispatched(manager.url);
  forwardMs["sync"] = ((after.sum - before.sum) * 1000) / (after.count - before.count);
  managerCpuMs["sync"] = (processCpuMs(managerPid) - cpuBefore) / tasks;
  before = after;
  cpuBefore = processCpuMs(managerPid);
  for (let i = 0; i < tasks; i++) {
    figures["directAsync"]!.push(await submitTrue(direct, TaskMode.ASYNC));
    figures["managerAsync"]!.push(await submitTrue(through, TaskMode.ASYNC));
  }
  after = await dispatched(manager.url);
  forwardMs["async"] = ((after.sum - before.sum) * 1000) / (after.count - before.count);
  managerCpuMs["async"] = (processCpuMs(managerPid) - cpuBefore) / tasks;
  before = after;
  cpuBefore = processCpuMs(managerPid);
  for (let i = 0; i < tasks; i++) {
    figures["directRun"]!.push(await runTrue(direct));
    figures["managerRun"]!.push(await runTrue(through));
  }
  after = await dispatched(manager.url);
  forwardMs["run"] = ((after.sum - before.sum) * 1000) / (after.count - before.count);
  managerCpuMs["run"] = (processCpuMs(managerPid) - cpuBefore) / tasks;
} finally {
  await manager?.stop();
  await node?.stop();
  await rm(work, { recursive: true, force: true });
}
const summary = Object.fromEntries(Object.entries(figures).map(([name, values]) => [name, { median: quantile(values, 0.5), p90: quantile(values, 0.9), mean: values.reduce((a, b) => a + b, 0) / values.length }]));
for (const [name, { median, p90, mean }] of Object.entries(summary)) log(`${name.padEnd(13)} median ${median.toFixed(2)} ms, p90 ${p90.toFixed(2)} ms, mean ${mean.toFixed(2)} ms`);
const adds = (kind: string): string => (summary[`manager${kind}`]!.median - summary[`direct${kind}`]!.median).toFixed(2);
log(`the manager adds ${adds("Sync")} ms sync, ${adds("Async")} ms async, ${adds("Run")} ms to RunTask at the median`);
log(`forwarded calls as the manager timed them (mean): ${forwardMs["sync"]?.toFixed(2)} ms sync, ${forwardMs["async"]?.toFixed(2)} ms async, ${forwardMs["run"]?.toFixed(2)} ms RunTask (to its first event)`);
log(`the manager's CPU per forwarded task (all its threads, background included): ${managerCpuMs["sync"]?.toFixed(2)} ms sync, ${managerCpuMs["async"]?.toFixed(2)} ms async, ${managerCpuMs["run"]?.toFixed(2)} ms RunTask`);
console.log(JSON.stringify({ tasks, ...summary, forwardMs, managerCpuMs }));
