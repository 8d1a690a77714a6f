// The task store's own cost, without spawning: `node --import tsx bench/store-writes.ts [N] [C]`
// takes N tasks through acceptance, spawned and final statuses (the writes a sync `true` task
// makes), C at a time, with the per-file store and the journaled one interleaved over three
// rounds, and prints each round's median and p99 time of one task's three writes, the
// fdatasync-bound ratio of the two, and this process's CPU per task.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { taskStatus } from "../src/domain/task.js";
import { createTaskStore } from "../src/store/task-store.js";
import { quantile, runConcurrent } from "./lib.js";

const total = Number(process.argv[2] ?? 1000);
const inFlight = Number(process.argv[3] ?? 32);

async function round(journal: boolean): Promise<{ line: string; p50: number }> {
  const dataDir = mkdtempSync(join(tmpdir(), "drce-store-writes-"));
  const store = await createTaskStore({ dataDir, journal });
  await store.load();
  const times: number[] = [];
  const cpu = process.cpuUsage();
  const ms = await runConcurrent(total, inFlight, async (n) => {
    const id = `t${n}`;
    const base = taskStatus({ id, command: "true", submittedAt: Date.now() });
    const started = performance.now();
    await store.create({ digest: `d${n}`, spec: { id, command: "true" } as never }, { ...base, state: 2 });
    await store.saveStatus({ ...base, state: 1, pid: 1000 + n, startedAt: Date.now() }, "spawned");
    await store.saveStatus({ ...base, state: 0, pid: 1000 + n, finishedAt: Date.now() }, "final");
    times.push(performance.now() - started);
  });
  const used = process.cpuUsage(cpu);
  store.close();
  rmSync(dataDir, { recursive: true, force: true });
  const p50 = quantile(times, 0.5);
  return {
    p50,
    line: `${journal ? "journal " : "per-file"}  ${((total * 1000) / ms).toFixed(0)} tasks/s  p50 ${p50.toFixed(2)} ms  p99 ${quantile(times, 0.99).toFixed(2)} ms  CPU ${((used.user + used.system) / 1000 / total).toFixed(3)} ms/task`,
  };
}

for (let i = 0; i < 3; i++) {
  const perFile = await round(false);
  const journaled = await round(true);
  console.log(`${perFile.line}\n${journaled.line}\n  per-file / journal p50: ${(perFile.p50 / journaled.p50).toFixed(1)} x`);
}
