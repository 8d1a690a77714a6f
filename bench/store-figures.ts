// The figures the task store's durability decides, in a few seconds, for comparing builds
// side by side (the full set is bench/run.ts): one caller's sync `true` latency, 32 callers'
// sync throughput against raw spawns measured in the same run, and the submit latency of
// async `true` tasks with 32 in flight, with the node's CPU (main thread and its other
// threads, from /proc) per task of each part.
// Usage: node --import tsx bench/store-figures.ts [ROUNDS] [SCALE] (SCALE multiplies the task counts: 200, 1000, 2000)
import { readFile } from "node:fs/promises";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { TaskMode, TaskSpecSchema } from "../gen/drce/v1/task_pb.js";
import { quantile, runConcurrent, runJsonChild, startBenchNode, type BenchNode } from "./lib.js";

const rounds = Number(process.argv[2] ?? 2);
const scale = Number(process.argv[3] ?? 1);
const [oneCount, manyCount, asyncCount] = [200, 1000, 2000].map((count) => Math.max(20, Math.round(count * scale))) as [number, number, number];
const trueSpec = (mode: TaskMode = TaskMode.SYNC) => create(TaskSpecSchema, { command: "true", mode });

/** The node process's CPU ms so far (all its threads), from /proc. */
async function nodeCpuMs(node: BenchNode): Promise<number> {
  const stat = await readFile(`/proc/${node.pid}/stat`, "latin1");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function measure(node: BenchNode, count: number, part: () => Promise<number[]>): Promise<{ samples: number[]; cpuMsPerTask: number; ms: number }> {
  const cpu = await nodeCpuMs(node);
  const started = performance.now();
  const samples = await part();
  const ms = performance.now() - started;
  return { samples, cpuMsPerTask: ((await nodeCpuMs(node)) - cpu) / count, ms };
}

for (let round = 0; round < rounds; round++) {
  const work = await mkdtemp(join(tmpdir(), "drce-store-figures-"));
  const node = await startBenchNode({ dataDir: join(work, "data") });
  try {
    await runConcurrent(oneCount, 32, async () => void (await node.client.submitTask({ task: trueSpec() })));
    const one = await measure(node, oneCount, async () => {
      const samples: number[] = [];
      for (let i = 0; i < oneCount; i++) {
        const t = performance.now();
        await node.client.submitTask({ task: trueSpec() });
        samples.push(performance.now() - t);
      }
      return samples;
    });
    const many = await measure(node, manyCount, async () => {
      await runConcurrent(manyCount, 32, async () => void (await node.client.submitTask({ task: trueSpec() })));
      return [];
    });
    const raw = (await runJsonChild<{ tasksPerSecond: number }>(["bench/raw-spawn.ts", "throughput", String(manyCount), "32"])).tasksPerSecond;
    const asyncRun = await measure(node, asyncCount, async () => {
      const samples: number[] = [];
      await runConcurrent(asyncCount, 32, async () => {
        const t = performance.now();
        await node.client.submitTask({ task: trueSpec(TaskMode.ASYNC) });
        samples.push(performance.now() - t);
      });
      return samples;
    });
    const tps = (manyCount * 1000) / many.ms;
    console.log(
      [
        `round ${round + 1}:`,
        `1 caller sync p50 ${quantile(one.samples, 0.5).toFixed(2)} ms p99 ${quantile(one.samples, 0.99).toFixed(2)} ms, node CPU ${one.cpuMsPerTask.toFixed(2)} ms/task;`,
        `32 callers ${tps.toFixed(0)} tasks/s = ${(tps / raw).toFixed(2)} x raw spawn (${raw.toFixed(0)}/s), node CPU ${many.cpuMsPerTask.toFixed(2)} ms/task;`,
        `async submit p50 ${quantile(asyncRun.samples, 0.5).toFixed(2)} ms p99 ${quantile(asyncRun.samples, 0.99).toFixed(2)} ms, node CPU ${asyncRun.cpuMsPerTask.toFixed(2)} ms/task`,
      ].join(" "),
    );
  } finally {
    await node.stop();
    await rm(work, { recursive: true, force: true });
  }
}
