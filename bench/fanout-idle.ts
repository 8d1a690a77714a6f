/*
 * The background CPU of an idle cluster: N data nodes (`drce serve --name node-NN`, each its
 * own process on loopback, from the bundle) listed by one manager, as `bench/fanout.ts` starts
 * them. Once every node is up, the user and system time of each process (utime + stime of
 * /proc/PID/stat, its native spawner included) is read, the cluster is left idle for the
 * window, and read again: the CPU the cluster burns while no task runs, which 20 nodes on a
 * small host take from the fan-out they are there for.
 *
 * Run: node --import tsx bench/fanout-idle.ts [--nodes N] [--seconds N] [--args "FLAGS"]
 *   --args: extra `drce serve` flags for every node and the manager (e.g. "--heartbeat-ms 2000").
 * The last line of stdout is the figures as JSON (CPU ms over the window).
 */
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { processCpuMs, root, startBenchNode, waitForCluster, type BenchNode } from "./lib.js";

const option = (name: string, fallback: string): string => {
  const at = process.argv.indexOf(name);
  return at === -1 ? fallback : (process.argv[at + 1] ?? fallback);
};
const nodeCount = Number(option("--nodes", "20"));
const seconds = Number(option("--seconds", "30"));
const extra = option("--args", "").split(" ").filter((word) => word !== "");
const log = (text: string): void => void process.stderr.write(`fanout-idle: ${text}\n`);

/** A process and its children (the node's native spawner), by pid. */
function family(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const text = readFileSync(`/proc/${entry}/stat`, "latin1");
      const parent = Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[1]);
      if (parent === pid) children.push(Number(entry));
    } catch {
      // The process ended while the list was read: it is no one's child any more.
    }
  }
  return [pid, ...children];
}

execFileSync(process.execPath, ["bin/build.js"], { cwd: root, stdio: "inherit" });
const work = await mkdtemp(join(tmpdir(), "drce-bench-idle-"));
const nodes: BenchNode[] = [];
let manager: BenchNode | undefined;
try {
  const names = Array.from({ length: nodeCount }, (_, i) => `node-${String(i + 1).padStart(2, "0")}`);
  for (let i = 0; i < names.length; i += 4) nodes.push(...(await Promise.all(names.slice(i, i + 4).map((name) => startBenchNode({ dataDir: join(work, name), args: ["--name", name, ...extra] })))));
  manager = await startBenchNode({ dataDir: join(work, "manager"), args: ["--name", "manager", "--role", "manager", "--node-timeout-ms", "120000", ...extra, ...nodes.flatMap((node) => ["--node", node.url])] });
  await waitForCluster(manager.url, nodes.length);
  // Settle: the first polls fetch host facts once; the figures are of the steady state.
  await sleep(3000);
  const nodePids = nodes.flatMap((node) => family(node.pid));
  const managerPids = family(manager.pid);
  const before = new Map([...nodePids, ...managerPids].map((pid) => [pid, processCpuMs(pid)]));
  const loadBefore = readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  await sleep(seconds * 1000);
  const spent = (pids: readonly number[]): number => pids.reduce((sum, pid) => sum + processCpuMs(pid) - (before.get(pid) ?? 0), 0);
  const nodesMs = spent(nodePids);
  const managerMs = spent(managerPids);
  const loadAfter = readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  log(`${nodeCount} idle nodes over ${seconds} s: ${nodesMs.toFixed(0)} ms of CPU (${(nodesMs / nodeCount / seconds).toFixed(2)} ms per node per second), the manager ${managerMs.toFixed(0)} ms (${(managerMs / seconds).toFixed(2)} ms per second); the cluster ${(((nodesMs + managerMs) / (seconds * 1000)) * 100).toFixed(1)} % of one CPU; load ${loadBefore} -> ${loadAfter}; flags: ${extra.join(" ") || "(defaults)"}`);
  console.log(JSON.stringify({ nodes: nodeCount, seconds, nodesCpuMs: nodesMs, managerCpuMs: managerMs, perNodePerSecondMs: nodesMs / nodeCount / seconds, managerPerSecondMs: managerMs / seconds, args: extra }));
} finally {
  await manager?.stop();
  await Promise.all(nodes.map((node) => node.stop()));
  await rm(work, { recursive: true, force: true });
}
