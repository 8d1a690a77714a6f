/*
 * What a data node's task costs after the node sat idle, against the same task run right
 * after another: one node from the bundle runs `uname -a` (RunTask) in pairs, an idle gap
 * then a task (cold), and at once a second task (warm), reading the node's own CPU time
 * (utime + stime of /proc/PID/stat, its threads included) and the wall time of each call.
 *
 * Run: node --import tsx bench/fanout-cold.ts [--pairs N] [--idle-ms N] [--node-flags "FLAGS"]
 * The last line of stdout is the figures as JSON (medians, ms).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { TaskSpecSchema } from "../gen/drce/v1/task_pb.js";
import { processCpuMs, quantile, root, startBenchNode } from "./lib.js";

const option = (name: string, fallback: string): string => {
  const at = process.argv.indexOf(name);
  return at === -1 ? fallback : (process.argv[at + 1] ?? fallback);
};
const pairs = Number(option("--pairs", "8"));
const idleMs = Number(option("--idle-ms", "10000"));
const nodeFlags = option("--node-flags", "").split(" ").filter((word) => word !== "");
const serveFlags = option("--args", "").split(" ").filter((word) => word !== "");
const log = (text: string): void => void process.stderr.write(`fanout-cold: ${text}\n`);


/** VmRSS of a process, MiB. */
function rssMiB(pid: number): number {
  const match = /VmRSS:\s+([0-9]+) kB/.exec(readFileSync(`/proc/${pid}/status`, "latin1"));
  return Number(match?.[1] ?? 0) / 1024;
}

execFileSync(process.execPath, ["bin/build.js"], { cwd: root, stdio: "inherit" });
const work = await mkdtemp(join(tmpdir(), "drce-bench-cold-"));
const node = await startBenchNode({ dataDir: join(work, "node"), nodeFlags, args: ["--name", "cold", ...serveFlags] });
const cold: { wall: number; cpu: number }[] = [];
const warm: { wall: number; cpu: number }[] = [];
try {
  const spec = create(TaskSpecSchema, { argv: ["uname", "-a"] });
  const one = async (): Promise<{ wall: number; cpu: number }> => {
    const cpu = processCpuMs(node.pid);
    const started = performance.now();
    for await (const _message of node.client.runTask({ task: spec })) void _message;
    const wall = performance.now() - started;
    // The node's CPU includes what follows the reply (the final record's write): let it settle.
    await sleep(300);
    return { wall, cpu: processCpuMs(node.pid) - cpu };
  };
  for (let i = 0; i < 3; i++) await one(); // the first tasks compile the path: not counted
  for (let pair = 0; pair < pairs; pair++) {
    await sleep(idleMs);
    cold.push(await one());
    warm.push(await one());
    log(`pair ${pair + 1}: cold ${cold.at(-1)!.wall.toFixed(1)} ms (${cold.at(-1)!.cpu} ms CPU), warm ${warm.at(-1)!.wall.toFixed(1)} ms (${warm.at(-1)!.cpu} ms CPU)`);
  }
  const figures = {
    coldWallMs: quantile(cold.map((c) => c.wall), 0.5),
    coldCpuMs: quantile(cold.map((c) => c.cpu), 0.5),
    warmWallMs: quantile(warm.map((c) => c.wall), 0.5),
    warmCpuMs: quantile(warm.map((c) => c.cpu), 0.5),
    rssMiB: rssMiB(node.pid),
    nodeFlags,
    serveFlags,
  };
  log(`medians of ${pairs} pairs after ${idleMs} ms idle: cold ${figures.coldWallMs.toFixed(1)} ms (${figures.coldCpuMs} ms CPU), warm ${figures.warmWallMs.toFixed(1)} ms (${figures.warmCpuMs} ms CPU); RSS ${figures.rssMiB.toFixed(1)} MiB; node flags: ${nodeFlags.join(" ") || "(none)"}`);
  console.log(JSON.stringify(figures));
} finally {
  await node.stop();
  await rm(work, { recursive: true, force: true });
}
