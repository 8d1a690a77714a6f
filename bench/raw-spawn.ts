// Baseline: the same command a node runs for a trivial task (`/bin/sh -c true`, in its own
// process group, with piped stdio), spawned by a plain Node process with child_process.
// Usage: raw-spawn.ts throughput COUNT CONCURRENCY | raw-spawn.ts latency COUNT
import { quantile, runConcurrent, spawnTrue } from "./lib.js";

const [mode, countText, concurrencyText] = process.argv.slice(2);
const count = Number(countText);
if (mode === "throughput") {
  const ms = await runConcurrent(count, Number(concurrencyText), spawnTrue);
  console.log(JSON.stringify({ tasksPerSecond: (count * 1000) / ms }));
} else if (mode === "latency") {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await spawnTrue();
    samples.push(performance.now() - started);
  }
  console.log(JSON.stringify({ medianMs: quantile(samples, 0.5) }));
} else {
  console.error("usage: raw-spawn.ts throughput COUNT CONCURRENCY | latency COUNT");
  process.exit(2);
}
