/*
 * One fan-out through a manager, traced from its caller: N data nodes (`drce serve --name
 * node-NN`, each its own process on loopback, from the bundle) listed by one manager, then,
 * round by round, a RunTask of `uname -a` with placement ALL sent by a warm client in this
 * process, with the time of each event after the call was made: the merged acceptance, each
 * node's first output and its result, and the merged result; then the same task sent to
 * every node directly, all at once (the floor the nodes set, with no manager). Each round also
 * times `drce run --all -- uname -a` as a whole process and `drce --version` (the CLI's
 * start-up alone), so that what the CLI's start costs is told apart from what the fan-out costs,
 * and the CPU that the nodes (their spawners included), the manager and this caller spent
 * during the traced call (user + system from /proc; after the reply, and again once the nodes'
 * last writes are done).
 *
 * Run: node --import tsx bench/fanout-trace.ts [--nodes N] [--rounds N] [--node-flags "FLAGS"] [--node-args "ARGS"]
 *   default 20 nodes and 5 rounds; --node-flags: Node.js flags for every data node (V8 flags, to
 *   tell their effect apart); --node-args: more `drce serve` arguments for every data node.
 * The last line of stdout is the figures as JSON (medians over the rounds, in ms).
 */
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { PlacementMode, TaskSpecSchema } from "../gen/drce/v1/task_pb.js";
import { TaskService } from "../gen/drce/v1/task_service_pb.js";
import { processCpuMs, quantile, root, sleep, startBenchNode, waitForCluster, type BenchNode } from "./lib.js";

const option = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(name);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
};
const nodeCount = option("--nodes", 20);
const rounds = option("--rounds", 5);
const words = (name: string): string[] => {
  const at = process.argv.indexOf(name);
  return at === -1 ? [] : (process.argv[at + 1] ?? "").split(" ").filter((word) => word !== "");
};
const nodeFlags = words("--node-flags");
const nodeArgs = words("--node-args");
const log = (text: string): void => void process.stderr.write(`fanout-trace: ${text}\n`);

/** The pids whose parent is `pid` (a node's spawner), from /proc. */
function childrenOf(pid: number): number[] {
  const parentOf = (child: string): string | undefined => {
    try {
      const stat = readFileSync(`/proc/${child}/stat`, "latin1");
      return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1];
    } catch {
      return undefined; // gone meanwhile: not a child to count
    }
  };
  return readdirSync("/proc").filter((entry) => /^[0-9]+$/.test(entry) && parentOf(entry) === String(pid)).map(Number);
}

/** utime + stime of the processes, ms. */
const cpuOf = (pids: readonly number[]): number => pids.reduce((sum, pid) => sum + processCpuMs(pid), 0);

/** The times of one traced fan-out after its call was made, ms. */
interface Trace {
  readonly accepted: number;
  readonly firstOutput: number;
  readonly lastFirstOutput: number;
  readonly firstNodeResult: number;
  readonly lastNodeResult: number;
  readonly result: number;
  readonly end: number;
}

/** A whole process, spawn to exit, in ms; rejects on a non-zero exit. */
async function wholeProcess(args: readonly string[], server: string): Promise<number> {
  const started = performance.now();
  const child = spawn(process.execPath, ["bin/drce.cjs", ...args], { cwd: root, env: { ...process.env, DRCE_SERVER: server }, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const [code] = (await once(child, "close")) as [number | null];
  if (code !== 0) throw new Error(`drce ${args.join(" ")} exited with ${code}: ${stderr.slice(-800)}`);
  return performance.now() - started;
}

execFileSync(process.execPath, ["bin/build.js"], { cwd: root, stdio: "inherit" });
const work = await mkdtemp(join(tmpdir(), "drce-bench-trace-"));
const nodes: BenchNode[] = [];
let manager: BenchNode | undefined;
const traces: Trace[] = [];
const cli: number[] = [];
const version: number[] = [];
const direct: number[] = [];
try {
  const names = Array.from({ length: nodeCount }, (_, i) => `node-${String(i + 1).padStart(2, "0")}`);
  for (let i = 0; i < names.length; i += 4) nodes.push(...(await Promise.all(names.slice(i, i + 4).map((name) => startBenchNode({ dataDir: join(work, name), nodeFlags, args: ["--name", name, ...nodeArgs] })))));
  manager = await startBenchNode({ dataDir: join(work, "manager"), args: ["--name", "manager", "--role", "manager", "--node-timeout-ms", "120000", ...nodes.flatMap((node) => ["--node", node.url])] });
  await waitForCluster(manager.url, nodes.length);
  const client = createClient(TaskService, createConnectTransport({ baseUrl: manager.url, httpVersion: "2" }));
  const spec = create(TaskSpecSchema, { argv: ["uname", "-a"], placement: { mode: PlacementMode.ALL } });
  for (let round = -1; round < rounds; round++) {
    await waitForCluster(manager.url, nodes.length);
    const nodePids = nodes.flatMap((node) => [node.pid, ...childrenOf(node.pid)]);
    const cpu0 = { nodes: cpuOf(nodePids), manager: processCpuMs(manager!.pid), self: process.cpuUsage() };
    const started = performance.now();
    const at = (): number => performance.now() - started;
    let accepted = Number.NaN;
    let result = Number.NaN;
    const firstOutput = new Map<string, number>();
    const nodeResult: number[] = [];
    for await (const message of client.runTask({ task: spec })) {
      const event = message.event;
      if (event.case === "accepted") accepted = at();
      else if (event.case === "output" && !firstOutput.has(message.node ?? "")) firstOutput.set(message.node ?? "", at());
      else if (event.case === "nodeResult") nodeResult.push(at());
      else if (event.case === "result") result = at();
    }
    const end = at();
    const cpu1 = { nodes: cpuOf(nodePids), manager: processCpuMs(manager!.pid), self: process.cpuUsage(cpu0.self) };
    await sleep(400);
    log(`cpu during the call: nodes ${(cpu1.nodes - cpu0.nodes).toFixed(0)} ms (${((cpuOf(nodePids) - cpu0.nodes) / nodes.length).toFixed(1)} per node after settling), manager ${(cpu1.manager - cpu0.manager).toFixed(0)} ms (${(processCpuMs(manager!.pid) - cpu0.manager).toFixed(0)} settled), caller ${((cpu1.self.user + cpu1.self.system) / 1000).toFixed(0)} ms`);
    if (firstOutput.size !== nodes.length || nodeResult.length !== nodes.length) throw new Error(`${firstOutput.size} nodes' output and ${nodeResult.length} node results of ${nodes.length}`);
    const outputs = [...firstOutput.values()];
    // The same task sent to every node directly, all at once: the floor the nodes set.
    const directStarted = performance.now();
    const single = create(TaskSpecSchema, { argv: ["uname", "-a"] });
    const directEach = await Promise.all(
      nodes.map(async (node) => {
        for await (const _message of node.client.runTask({ task: single })) void _message;
        return performance.now() - directStarted;
      }),
    );
    const directMs = Math.max(...directEach);
    const cliMs = await wholeProcess(["run", "--all", "--", "uname", "-a"], manager.url);
    const versionMs = await wholeProcess(["--version"], manager.url);
    // The first round warms the connections and the nodes' first task; it is not counted.
    if (round < 0) continue;
    const trace = { accepted, firstOutput: Math.min(...outputs), lastFirstOutput: Math.max(...outputs), firstNodeResult: Math.min(...nodeResult), lastNodeResult: Math.max(...nodeResult), result, end };
    traces.push(trace);
    cli.push(cliMs);
    direct.push(directMs);
    version.push(versionMs);
    log(`round ${round + 1}: ${Object.entries(trace).map(([name, ms]) => `${name} ${ms.toFixed(1)}`).join(", ")}; ${nodes.length} direct at once ${directMs.toFixed(1)} ms; drce run --all ${cliMs.toFixed(0)} ms, drce --version ${versionMs.toFixed(0)} ms`);
  }
} finally {
  await manager?.stop();
  await Promise.all(nodes.map((node) => node.stop()));
  await rm(work, { recursive: true, force: true });
}
const medians = Object.fromEntries((Object.keys(traces[0] ?? {}) as (keyof Trace)[]).map((name) => [name, quantile(traces.map((trace) => trace[name]), 0.5)]));
log(`medians over ${traces.length} rounds of ${nodeCount} nodes: ${Object.entries(medians).map(([name, ms]) => `${name} ${ms.toFixed(1)}`).join(", ")}`);
log(`${nodeCount} direct calls at once ${quantile(direct, 0.5).toFixed(1)} ms, drce run --all ${quantile(cli, 0.5).toFixed(0)} ms, drce --version ${quantile(version, 0.5).toFixed(0)} ms`);
console.log(JSON.stringify({ nodes: nodeCount, rounds: traces.length, ...medians, directAtOnceMs: quantile(direct, 0.5), cliMs: quantile(cli, 0.5), versionMs: quantile(version, 0.5) }));
