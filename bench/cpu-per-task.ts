// Where the CPU of a sync task goes, process by process: a node (the compiled bundle) runs
// COUNT sync `true` tasks from 32 callers in this process, and the CPU time (user and system,
// from /proc) of the node's main thread, its other threads (V8's and libuv's), its spawner,
// this client and the whole machine is printed per task.
// Usage: cpu-per-task.ts [COUNT] [-- drce serve flags...]
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { TaskSpecSchema } from "../gen/drce/v1/task_pb.js";
import { runConcurrent, startBenchNode } from "./lib.js";

const dashes = process.argv.indexOf("--");
const count = Number(process.argv[2] ?? 2000);
const serveFlags = dashes < 0 ? [] : process.argv.slice(dashes + 1);
const work = await mkdtemp(join(tmpdir(), "drce-cpu-"));
const node = await startBenchNode({ dataDir: join(work, "data"), args: serveFlags });

/** User and system ms of a /proc stat line. */
function cpuOf(stat: string): { user: number; sys: number } {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const tick = 10; // USER_HZ is 100 on Linux
  return { user: Number(fields[11]) * tick, sys: Number(fields[12]) * tick };
}

interface Sample {
  readonly main: { user: number; sys: number };
  readonly threads: { user: number; sys: number };
  readonly spawner: { user: number; sys: number };
  readonly client: { user: number; sys: number };
  readonly busy: number;
  readonly idle: number;
}

async function spawnerPid(): Promise<number | undefined> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "latin1").catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid !== node.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "latin1").catch(() => "");
    // The Node.js spawner runs spawner-main; the native one a binary named by its source's hash.
    if (cmdline.includes("spawner-main") || /\/spawner-[0-9a-f]{16}\0/.test(cmdline)) return Number(entry);
  }
  return undefined;
}

async function sample(spawner: number | undefined): Promise<Sample> {
  const main = cpuOf(await readFile(`/proc/${node.pid}/task/${node.pid}/stat`, "latin1"));
  const threads = { user: 0, sys: 0 };
  for (const tid of await readdir(`/proc/${node.pid}/task`)) {
    if (Number(tid) === node.pid) continue;
    const cpu = cpuOf(await readFile(`/proc/${node.pid}/task/${tid}/stat`, "latin1").catch(() => ") x 0 0 0 0 0 0 0 0 0 0 0 0"));
    threads.user += cpu.user;
    threads.sys += cpu.sys;
  }
  const spawnerCpu = spawner === undefined ? { user: 0, sys: 0 } : cpuOf(await readFile(`/proc/${spawner}/stat`, "latin1"));
  const client = cpuOf(await readFile("/proc/self/stat", "latin1"));
  const all = (await readFile("/proc/stat", "latin1")).split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (all[3]! + all[4]!) * 10;
  return { main, threads, spawner: spawnerCpu, client, busy: all.reduce((a, b) => a + b, 0) * 10 - idle, idle };
}

/** Resident memory of a process in MB (VmRSS), or 0 when it is gone. */
async function rssMb(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  const status = await readFile(`/proc/${pid}/status`, "latin1").catch(() => "");
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0) / 1024;
}

const job = async (): Promise<void> => {
  await node.client.submitTask({ task: create(TaskSpecSchema, { command: "true" }) });
};
try {
  await runConcurrent(300, 32, job); // warm-up; starts the spawner
  const spawner = await spawnerPid();
  const [nodeRss, spawnerRss] = [await rssMb(node.pid), await rssMb(spawner)];
  const before = await sample(spawner);
  const ms = await runConcurrent(count, 32, job);
  const after = await sample(spawner);
  const per = (a: number, b: number): string => ((b - a) / count).toFixed(2).padStart(6);
  const row = (label: string, a: { user: number; sys: number }, b: { user: number; sys: number }): void =>
    console.log(`${label.padEnd(30)} user ${per(a.user, b.user)}   sys ${per(a.sys, b.sys)}   ms/task`);
  console.log(`${count} sync true tasks, 32 callers: ${((count * 1000) / ms).toFixed(0)} tasks/s`);
  row("node, main thread", before.main, after.main);
  row("node, other threads", before.threads, after.threads);
  row(spawner === undefined ? "spawner (none found)" : "spawner", before.spawner, after.spawner);
  row("client (this process)", before.client, after.client);
  console.log(`RSS after the warm-up: node ${nodeRss.toFixed(1)} MB, spawner ${spawnerRss.toFixed(1)} MB, together ${(nodeRss + spawnerRss).toFixed(1)} MB`);
  console.log(`${"machine".padEnd(30)} busy ${per(before.busy, after.busy)}   idle ${per(before.idle, after.idle)}   ms/task (all CPUs)`);
} finally {
  await node.stop();
  await rm(work, { recursive: true, force: true });
}
