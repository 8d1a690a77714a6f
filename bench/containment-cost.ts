/*
 * What containment adds to each task: runs the same short command through the local runner
 * with a cgroup per task and with process groups only, alternating task by task so that
 * a loaded host slows both alike, and prints the median time per task of each and the
 * difference. Each task's spawn record is written as the node writes it (fsynced). Both
 * spawners are measured, interleaved: the native one (a cgroup task created in its group by
 * clone3) and the Node.js one (a cgroup task behind the gate, then moved). Usage: node
 * --import tsx bench/containment-cost.ts [tasks-per-round] [rounds]
 */
import { Writable } from "node:stream";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { taskSpec } from "../src/domain/task.js";
import { detectCgroups } from "../src/executor/cgroup.js";
import { createContainment } from "../src/executor/containment.js";
import { createLocalRunner } from "../src/executor/local-runner.js";
import type { Runner } from "../src/executor/runner.js";
import { createSpawner } from "../src/executor/spawner.js";
import { writeFileAtomic } from "../src/store/atomic.js";

const perRound = Number(process.argv[2] ?? 50);
const rounds = Number(process.argv[3] ?? 6);
const sink = (): Writable => new Writable({ write: (_chunk, _encoding, callback) => callback() });

async function runOnce(runner: Runner, id: string, workDir: string): Promise<number> {
  const started = process.hrtime.bigint();
  // As the node does, the spawn record is written (atomically, fsynced) in onSpawn.
  const onSpawn = async (info: object): Promise<void> => writeFileAtomic(join(workDir, "status.json"), JSON.stringify(info));
  const handle = await runner.start({ spec: taskSpec({ id, command: "true" }), workDir, stdout: sink(), stderr: sink(), onSpawn });
  const outcome = await handle.done;
  if (outcome.kind !== "exited" || outcome.exitStatus !== 0) throw new Error(`task ${id} failed: ${JSON.stringify(outcome)}`);
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const p99 = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * 0.99))]!;

const cgroups = await detectCgroups();
if (cgroups === undefined) {
  console.log("no writable cgroup hierarchy: nothing to compare");
  process.exit(0);
}
const workDir = await mkdtemp(join(tmpdir(), "drce-bench-"));
const spawners = { node: createSpawner({ killOnDisconnect: true, implementation: "node" }), native: createSpawner({ killOnDisconnect: true, implementation: "auto" }) };
const runners = Object.fromEntries(
  Object.entries(spawners).flatMap(([kind, spawner]) => [
    [`${kind}, process group`, createLocalRunner({ spawner, containment: createContainment({ cgroups: undefined }) })],
    [`${kind}, cgroup v${cgroups.version}`, createLocalRunner({ spawner, containment: createContainment({ cgroups, groupPrefix: `bench${process.pid}${kind}.` }) })],
  ]),
);
const times: Record<string, number[]> = Object.fromEntries(Object.keys(runners).map((k) => [k, []]));
// CPU time of this process (user + system) spent per task, by mode.
const cpu: Record<string, number> = Object.fromEntries(Object.keys(runners).map((k) => [k, 0]));
let n = 0;
// Alternating task by task, so load from elsewhere falls on both alike.
for (let round = 0; round < rounds; round++) {
  for (let i = 0; i < perRound; i++) {
    for (const [name, runner] of Object.entries(runners)) {
      const before = process.cpuUsage();
      times[name]!.push(await runOnce(runner, `b${n++}`, workDir));
      const used = process.cpuUsage(before);
      cpu[name]! += (used.user + used.system) / 1000;
    }
  }
}
await rm(workDir, { recursive: true, force: true });
const medians = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
for (const [name, value] of Object.entries(medians)) {
  console.log(`${name.padEnd(24)} median ${value.toFixed(2)} ms, p99 ${p99(times[name]!).toFixed(2)} ms per task, node CPU ${(cpu[name]! / times[name]!.length).toFixed(2)} ms per task (${times[name]!.length} tasks)`);
}
for (const kind of Object.keys(spawners)) {
  const [base, contained] = [medians[`${kind}, process group`]!, medians[`${kind}, cgroup v${cgroups.version}`]!];
  console.log(`with the ${kind} spawner, cgroup containment adds ${(contained - base).toFixed(2)} ms per task (${((contained / base - 1) * 100).toFixed(0)}%)`);
}
await Promise.all(Object.values(spawners).map((spawner) => spawner.close()));
