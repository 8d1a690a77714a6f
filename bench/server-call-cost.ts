// What one Connect call costs the node: a node (the compiled bundle, `drce serve` as an operator
// starts it) answers COUNT sequential GetTask calls for a known task, then COUNT sequential
// SubmitTask calls of a sync `true`, from this process over one HTTP/2 connection. For each
// kind it prints the median latency and the node's CPU per call (user and system, all its
// threads, from /proc/<pid>/stat), and for the sync tasks also the spawner's, so the whole
// per-task cost shows.
// Usage: server-call-cost.ts [COUNT] [--profile DIR] [--entry FILE] [-- drce serve flags...]
// With --entry FILE, the node is started from another build of drce (a bundle kept from before
// a change, for a comparison in the same conditions).
// With --profile, the node runs with `--cpu-prof --cpu-prof-dir DIR` and its profile is kept there.
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { create } from "@bufbuild/protobuf";
import { TaskSpecSchema } from "../gen/drce/v1/task_pb.js";
import { quantile, startBenchNode } from "./lib.js";

const dashes = process.argv.indexOf("--");
const own = dashes < 0 ? process.argv.slice(2) : process.argv.slice(2, dashes);
const serveFlags = dashes < 0 ? [] : process.argv.slice(dashes + 1);
const profileAt = own.indexOf("--profile");
const profileDir = profileAt < 0 ? undefined : resolve(own[profileAt + 1] ?? "prof");
const entryAt = own.indexOf("--entry");
const entry = entryAt < 0 ? undefined : own[entryAt + 1];
const count = Number(own.find((arg, index) => /^\d+$/.test(arg) && (profileAt < 0 || index !== profileAt + 1) && (entryAt < 0 || index !== entryAt + 1)) ?? 2000);
const work = await mkdtemp(join(tmpdir(), "drce-call-cost-"));
const node = await startBenchNode({
  dataDir: join(work, "data"),
  args: serveFlags,
  ...(entry === undefined ? {} : { entry: [entry] }),
  ...(profileDir === undefined ? {} : { nodeFlags: ["--cpu-prof", "--cpu-prof-dir", profileDir] }),
});

/** User plus system ms of a process (all its threads) from its /proc stat line. */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "latin1");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10; // USER_HZ is 100 on Linux
}

/** The node's spawner (its child running spawner-main or the native spawner), if any. */
async function spawnerPid(): Promise<number | undefined> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "latin1").catch(() => ""); // ended since the listing
    if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) !== node.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "latin1").catch(() => ""); // ended since the listing
    if (cmdline.includes("spawner-main") || /\/spawner-[0-9a-f]{16}\0/.test(cmdline)) return Number(entry);
  }
  return undefined;
}

interface Figures {
  readonly medianMs: number;
  readonly nodeCpuMs: number;
  readonly spawnerCpuMs: number;
}

/** Runs `n` calls one after another, timing each, with the node's and spawner's CPU around them. */
async function measure(n: number, call: () => Promise<unknown>, spawner: number | undefined): Promise<Figures> {
  const latencies: number[] = [];
  const [node0, spawner0] = [await cpuMs(node.pid), spawner === undefined ? 0 : await cpuMs(spawner)];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await call();
    latencies.push(performance.now() - started);
  }
  const [node1, spawner1] = [await cpuMs(node.pid), spawner === undefined ? 0 : await cpuMs(spawner)];
  return { medianMs: quantile(latencies, 0.5), nodeCpuMs: (node1 - node0) / n, spawnerCpuMs: (spawner1 - spawner0) / n };
}

try {
  const submit = (): Promise<unknown> => node.client.submitTask({ task: create(TaskSpecSchema, { command: "true" }) });
  const first = await node.client.submitTask({ task: create(TaskSpecSchema, { command: "true" }) });
  const task = first.result?.id ?? "";
  const get = (): Promise<unknown> => node.client.getTask({ task });
  // Warm-up: the JIT, the connection, the spawner.
  await measure(Math.min(300, count), get, undefined);
  await measure(Math.min(100, count), submit, undefined);
  const spawner = await spawnerPid();
  const gets = await measure(count, get, undefined);
  const syncs = await measure(count, submit, spawner);
  console.log(`${count} sequential calls of each kind, one HTTP/2 connection`);
  console.log(`GetTask           median ${gets.medianMs.toFixed(3)} ms   node CPU ${gets.nodeCpuMs.toFixed(3)} ms/call`);
  console.log(
    `SubmitTask sync   median ${syncs.medianMs.toFixed(3)} ms   node CPU ${syncs.nodeCpuMs.toFixed(3)} ms/call   spawner CPU ${syncs.spawnerCpuMs.toFixed(3)} ms/call   node+spawner ${(syncs.nodeCpuMs + syncs.spawnerCpuMs).toFixed(3)} ms/task`,
  );
} finally {
  await node.stop();
  await rm(work, { recursive: true, force: true });
}
if (profileDir !== undefined) console.log(`node profile in ${profileDir}`);
