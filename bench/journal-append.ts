// The journal's group commit on this disk: `node --import tsx bench/journal-append.ts [N] [C]`
// appends N records of 600 bytes with C in flight, to preallocated segments and to growing
// ones, interleaved over three rounds, and prints each round's appends per commit, the median
// and p99 time to durable, and the process's CPU per record.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openJournal } from "../src/store/journal.js";

const total = Number(process.argv[2] ?? 3000);
const inFlight = Number(process.argv[3] ?? 32);
const record = Buffer.alloc(600, 0x61);

async function round(preallocate: boolean): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "drce-journal-bench-"));
  const journal = openJournal({ dir: join(dir, "j"), preallocate, segmentBytes: 1024 * 1024 });
  const waits: number[] = [];
  let next = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next++ < total) {
        const at = performance.now();
        await journal.append(record);
        waits.push(performance.now() - at);
      }
    }),
  );
  const wall = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const commits = journal.commits;
  await journal.close();
  rmSync(dir, { recursive: true, force: true });
  waits.sort((a, b) => a - b);
  const q = (p: number): string => waits[Math.min(waits.length - 1, Math.floor(waits.length * p))]!.toFixed(2);
  return `${preallocate ? "preallocated" : "growing     "}  ${(total / commits).toFixed(1)} appends/commit  median ${q(0.5)} ms  p99 ${q(0.99)} ms  ${(((used.user + used.system) / total)).toFixed(1)} us CPU/record  ${(total / (wall / 1000)).toFixed(0)} records/s`;
}

for (let i = 0; i < 3; i++) {
  console.log(await round(true));
  console.log(await round(false));
}
