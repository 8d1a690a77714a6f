/*
 * The manager's durable placement write, the part of every forwarded task spent before the
 * task leaves the manager: a put of a new entry into the placement record with a file per
 * entry made durable by itself (exclusive create, fdatasync, directory fsync), and into one
 * with a journal (an append made durable by a group commit of a preallocated segment, the
 * entry file written unsynced beside it), alternating put by put so that the load other
 * programs put on the disk moves both alike. One caller at a time, as a sequential `drce
 * run` sends them, then 32 at once.
 *
 * Run: node --import tsx bench/placement-record.ts [--puts N]   (default 200)
 * The last line of stdout is the figures as JSON (ms).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPlacementRecord, type PlacementEntry, type PlacementRecord } from "../src/cluster/placement-record.js";
import { quantile } from "./lib.js";

const at = process.argv.indexOf("--puts");
const puts = at === -1 ? 200 : Number(process.argv[at + 1]);
const log = (text: string): void => void process.stderr.write(`placement-record: ${text}\n`);
const entry = (id: string): PlacementEntry => ({ id, alias: "", ids: [id], digest: "d", kind: "one", nodes: ["node-01"], skipped: {}, mode: 1, placedAt: Date.now() });

/** The time of one put, ms. */
async function timedPut(record: PlacementRecord, id: string): Promise<number> {
  const started = performance.now();
  await record.put(entry(id));
  return performance.now() - started;
}

const root = await mkdtemp(join(tmpdir(), "drce-bench-placement-"));
const figures: Record<string, number> = {};
try {
  const files = createPlacementRecord({ dir: join(root, "files") });
  const journaled = createPlacementRecord({ dir: join(root, "journaled"), journalDir: join(root, "journal") });
  await journaled.load();
  const one = { files: [] as number[], journal: [] as number[] };
  for (let i = 0; i < puts; i++) {
    one.files.push(await timedPut(files, `s${i}`));
    one.journal.push(await timedPut(journaled, `s${i}`));
  }
  const many = { files: [] as number[], journal: [] as number[] };
  for (let round = 0; round < Math.max(1, Math.floor(puts / 32)); round++) {
    let started = performance.now();
    await Promise.all(Array.from({ length: 32 }, (_, i) => files.put(entry(`m${round}-${i}`))));
    many.files.push(performance.now() - started);
    started = performance.now();
    await Promise.all(Array.from({ length: 32 }, (_, i) => journaled.put(entry(`m${round}-${i}`))));
    many.journal.push(performance.now() - started);
  }
  await journaled.close();
  for (const kind of ["files", "journal"] as const) {
    figures[`${kind}OneMedian`] = quantile(one[kind], 0.5);
    figures[`${kind}OneP90`] = quantile(one[kind], 0.9);
    figures[`${kind}ThirtyTwoMedian`] = quantile(many[kind], 0.5);
  }
  log(`one put at a time (${puts}): a file per entry median ${figures["filesOneMedian"]!.toFixed(2)} ms, p90 ${figures["filesOneP90"]!.toFixed(2)} ms; journal median ${figures["journalOneMedian"]!.toFixed(2)} ms, p90 ${figures["journalOneP90"]!.toFixed(2)} ms`);
  log(`32 puts at once, to the last: a file per entry ${figures["filesThirtyTwoMedian"]!.toFixed(2)} ms; journal ${figures["journalThirtyTwoMedian"]!.toFixed(2)} ms (medians)`);
} finally {
  await rm(root, { recursive: true, force: true });
}
console.log(JSON.stringify({ puts, ...figures }));
