// Experiment: what spawning from a small helper process would change for a process the size
// of a node. The parent touches about 100 MB (like a node holding thousands of tasks) and runs
// `/bin/sh -c true` (own process group, piped stdio) with 32 callers, either itself or by
// asking a forked helper over IPC; it prints tasks/s and how busy its own event loop was.
// Usage: spawn-helper.ts [COUNT] [ROUNDS]     (the helper is this file run with "helper")
import { fork } from "node:child_process";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { runConcurrent, spawnTrue } from "./lib.js";

if (process.argv[2] === "helper") {
  process.on("message", (id: number) => {
    void spawnTrue().then(() => process.send?.(id));
  });
} else {
  const count = Number(process.argv[2] ?? 1000);
  const rounds = Number(process.argv[3] ?? 3);
  // Ballast: buffers and small objects, touched, as a node's heap and caches would be.
  const ballast: unknown[] = [];
  for (let i = 0; i < 64; i++) ballast.push(Buffer.alloc(1024 * 1024, i));
  for (let i = 0; i < 300_000; i++) ballast.push({ i, name: `task-${i}`, pair: [i, i + 1] });

  const helper = fork(fileURLToPath(import.meta.url), ["helper"], { execArgv: ["--import", "tsx"] });
  const waiting = new Map<number, () => void>();
  helper.on("message", (id: number) => {
    waiting.get(id)?.();
    waiting.delete(id);
  });
  let nextId = 0;
  const viaHelper = (): Promise<void> =>
    new Promise((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      helper.send(id);
    });

  const measure = async (label: string, spawnOne: () => Promise<void>): Promise<void> => {
    const before = performance.eventLoopUtilization();
    const ms = await runConcurrent(count, 32, spawnOne);
    const busy = performance.eventLoopUtilization(before).utilization;
    console.log(`${label.padEnd(22)} ${((count * 1000) / ms).toFixed(0).padStart(5)} tasks/s   parent event loop busy ${(busy * 100).toFixed(0)}%`);
  };
  await measure("warm-up", spawnTrue);
  for (let round = 0; round < rounds; round++) {
    await measure("spawned by the parent", spawnTrue);
    await measure("spawned by a helper", viaHelper);
  }
  console.log(`parent RSS ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB (${ballast.length} ballast objects)`);
  helper.kill();
}
