// Where the one-caller tail sits in time: COUNT sync `true` tasks one after the other against
// a node from the bundle, each call's start and duration kept, and the node's children
// watched for the journal's checkpoints (`sync --file-system`). Prints the median, the p99,
// when checkpoints ran and when the slowest one percent of calls started, so that slow calls
// can be told to cluster around checkpoints or not.
// Usage: node --import tsx bench/one-caller-tail.ts [COUNT]
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { TaskSpecSchema } from "../gen/drce/v1/task_pb.js";
import { quantile, startBenchNode } from "./lib.js";

const count = Number(process.argv[2] ?? 2000);
const work = await mkdtemp(join(tmpdir(), "drce-tail-"));
const node = await startBenchNode({ dataDir: join(work, "data") });
const checkpointsAt: number[] = [];
let watching = true;

/** The commands of the node's direct children (the main thread spawns them). */
function childCommands(pid: number): string[] {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(" ").filter(Boolean);
    return kids.map((kid) => {
      try {
        return readFileSync(`/proc/${kid}/cmdline`, "utf8");
      } catch {
        return ""; // the child exited between the two reads
      }
    });
  } catch {
    return []; // the node is gone
  }
}

const started = performance.now();
const watcher = (async () => {
  while (watching) {
    if (childCommands(node.pid).some((command) => command.startsWith("sync\0"))) checkpointsAt.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
})();
const calls: { at: number; ms: number }[] = [];
try {
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await node.client.submitTask({ task: create(TaskSpecSchema, { command: "true" }) });
    calls.push({ at: t - started, ms: performance.now() - t });
  }
} finally {
  watching = false;
  await watcher;
  await node.stop();
  await rm(work, { recursive: true, force: true });
}
const durations = calls.map((call) => call.ms);
const p99 = quantile(durations, 0.99);
const seconds = (ms: number): string => (ms / 1000).toFixed(2);
console.log(`${count} calls over ${seconds(calls.at(-1)?.at ?? 0)} s: median ${quantile(durations, 0.5).toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`);
console.log(`checkpoints seen at (s): ${[...new Set(checkpointsAt.map((at) => seconds(at).slice(0, -1)))].join(" ") || "none"}`);
console.log(`slowest 1% started at (s): ${calls.filter((call) => call.ms >= p99).map((call) => `${seconds(call.at)} (${call.ms.toFixed(0)} ms)`).join(", ")}`);
