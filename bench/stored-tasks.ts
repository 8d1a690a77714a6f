/*
 * What stored tasks cost a node: start-up time and RSS with COUNT finished tasks on disk
 * (copies of one real finished task, see fill-store.ts), for each count given, against a
 * node on an empty data directory; each start is repeated ROUNDS times, alternating.
 * The node runs from the compiled bundle (`node bin/drce.cjs serve`, built first).
 *
 * Run: node --import tsx bench/stored-tasks.ts [--counts 10000,100000] [--rounds 3]
 * The last line of stdout is the figures as JSON.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { TaskMode, TaskSpecSchema } from "../gen/drce/v1/task_pb.js";
import { fillStore } from "./fill-store.js";
import { procMemory, quantile, root, startBenchNode } from "./lib.js";

const { values } = parseArgs({ options: { counts: { type: "string" }, rounds: { type: "string" } } });
const counts = (values.counts ?? "10000,100000").split(",").map(Number);
const rounds = Number(values.rounds ?? 3);
const MB = 1024 * 1024;
const log = (text: string): void => void process.stderr.write(`stored-tasks: ${text}\n`);

/** Start-up and RSS figures of one store size (medians over the rounds). */
interface StoredFigures {
  readonly tasks: number;
  readonly startMs: number;
  readonly rssMB: number;
}

async function main(): Promise<{ emptyStartMs: number; emptyRssMB: number; stored: StoredFigures[] }> {
  execFileSync(process.execPath, ["bin/build.js"], { cwd: root, stdio: "inherit" });
  const work = await mkdtemp(join(tmpdir(), "drce-bench-stored-"));
  try {
    const source = join(work, "source");
    const sample = await startBenchNode({ dataDir: source });
    const reply = await sample.client.submitTask({ task: create(TaskSpecSchema, { command: "true", mode: TaskMode.SYNC }) });
    await sample.stop();
    if (reply.result?.exitStatus !== 0) throw new Error("the sample task failed");
    const storedDir = join(work, "stored");
    const emptyStarts: number[] = [];
    const emptyRss: number[] = [];
    const stored: StoredFigures[] = [];
    let filled = 0;
    for (const count of counts) {
      const filling = performance.now();
      const probe = await fillStore(source, storedDir, filled, count);
      log(`stored ${count - filled} more finished tasks in ${(performance.now() - filling).toFixed(0)} ms`);
      filled = count;
      const starts: number[] = [];
      const rss: number[] = [];
      for (let round = 0; round < rounds; round++) {
        const empty = await startBenchNode({ dataDir: join(work, "empty") });
        emptyStarts.push(empty.startMs);
        emptyRss.push(await procMemory(empty.pid, "VmRSS"));
        await empty.stop();
        const full = await startBenchNode({ dataDir: storedDir, probeTask: probe });
        starts.push(full.startMs);
        rss.push(await procMemory(full.pid, "VmRSS"));
        await full.stop();
        log(`${count} tasks, round ${round + 1}: start-up ${starts.at(-1)!.toFixed(0)} ms, RSS ${(rss.at(-1)! / MB).toFixed(1)} MB (empty: ${emptyStarts.at(-1)!.toFixed(0)} ms, ${(emptyRss.at(-1)! / MB).toFixed(1)} MB)`);
      }
      stored.push({ tasks: count, startMs: quantile(starts, 0.5), rssMB: quantile(rss, 0.5) / MB });
    }
    return { emptyStartMs: quantile(emptyStarts, 0.5), emptyRssMB: quantile(emptyRss, 0.5) / MB, stored };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

console.log(JSON.stringify(await main()));
