// Async submissions while the queue fills: COUNT async `true` tasks, CONCURRENCY in flight,
// against a node from the bundle (run `node bin/build.js` first). Prints the submit latency
// (p50, p90, p99), the acceptance rate during the submission phase, and the time from the
// first submission until every task is final (polled with ListTasks of the unfinished states).
// Usage: node --import tsx bench/async-submit.ts [COUNT] [CONCURRENCY]
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { TaskMode, TaskSpecSchema, TaskState } from "../gen/drce/v1/task_pb.js";
import { quantile, runConcurrent, sleep, startBenchNode } from "./lib.js";

const count = Number(process.argv[2] ?? 5000);
const concurrency = Number(process.argv[3] ?? 32);
const work = await mkdtemp(join(tmpdir(), "drce-async-submit-"));
const node = await startBenchNode({ dataDir: join(work, "data"), args: ["--max-output-bytes", "0"] });
const unfinished = [TaskState.NEW, TaskState.QUEUED, TaskState.IN_PROGRESS];
try {
  // Warm up (JIT, page cache) with a few sync tasks before anything is timed.
  await runConcurrent(200, concurrency, async () => {
    await node.client.submitTask({ task: create(TaskSpecSchema, { command: "true", mode: TaskMode.SYNC }) });
  });
  const latencies: number[] = [];
  const started = performance.now();
  const submitMs = await runConcurrent(count, concurrency, async () => {
    const t = performance.now();
    await node.client.submitTask({ task: create(TaskSpecSchema, { command: "true", mode: TaskMode.ASYNC }) });
    latencies.push(performance.now() - t);
  });
  for (;;) {
    const { tasks } = await node.client.listTasks({ states: unfinished });
    if (tasks.length === 0) break;
    await sleep(20);
  }
  const totalMs = performance.now() - started;
  const figures = {
    count,
    concurrency,
    submitP50Ms: quantile(latencies, 0.5),
    submitP90Ms: quantile(latencies, 0.9),
    submitP99Ms: quantile(latencies, 0.99),
    submitMaxMs: Math.max(...latencies),
    acceptedPerSecond: (count * 1000) / submitMs,
    submitPhaseMs: submitMs,
    untilAllFinishedMs: totalMs,
    finishedPerSecond: (count * 1000) / totalMs,
  };
  console.log(JSON.stringify(figures));
} finally {
  await node.stop();
  await rm(work, { recursive: true, force: true });
}
