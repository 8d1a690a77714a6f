// The spawner's one call, made with child_process and with execa in its lean options, in
// turns: COUNT commands (`/bin/true`, in a process group of its own, stdio on given fds, a
// given environment and cwd) per round, CONCURRENCY at a time, rounds alternating, and the
// CPU (user and system) of this process per command printed for each. The rule the spawner
// follows: execa if it costs at most 0.3 ms more per command, else child_process.
// execa is not a dependency of drce: `npm install --no-save execa@9` before running this.
// Usage: spawn-execa.ts [COUNT] [ROUNDS] [CONCURRENCY]
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import { runConcurrent } from "./lib.js";

const count = Number(process.argv[2] ?? 1000);
const rounds = Number(process.argv[3] ?? 4);
const concurrency = Number(process.argv[4] ?? 16);
const env = { PATH: "/usr/bin:/bin", HOME: tmpdir(), LANG: "C" };
// As in the spawner, the command's stdio are descriptors it is handed (there: sockets).
const devNull = openSync("/dev/null", "r+");

type Spawn = () => Promise<void>;

const withChildProcess: Spawn = () =>
  new Promise((resolve, reject) => {
    const child = spawn("/bin/true", [], { cwd: tmpdir(), env, detached: true, stdio: [devNull, devNull, devNull] });
    child.once("error", reject);
    child.once("exit", () => resolve());
  });

/** The part of execa's API this bench calls; typed here so that drce builds without execa. */
type Execa = (file: string, args: readonly string[], options: Record<string, unknown>) => Promise<unknown>;

let withExeca: Spawn;
try {
  // A name in a variable: tsc does not look for a module that is not a dependency.
  const name = "execa";
  const { execa } = (await import(name)) as { execa: Execa };
  // Lean: no buffering, no encoding, no final-newline stripping, stdio as given fds, no
  // cleanup hook, no rejection, no inherited environment.
  withExeca = async () => {
    await execa("/bin/true", [], { cwd: tmpdir(), env, extendEnv: false, detached: true, stdio: [devNull, devNull, devNull], buffer: false, encoding: "buffer", stripFinalNewline: false, cleanup: false, reject: false });
  };
} catch {
  console.error("spawn-execa: execa is not installed (npm install --no-save execa@9)");
  process.exit(2);
}

/** CPU ms of this process per command over one round of `count` commands. */
async function round(run: Spawn): Promise<number> {
  const before = process.cpuUsage();
  await runConcurrent(count, concurrency, run);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000 / count;
}

// A first round of each warms V8 and the page cache; it is not counted.
await round(withChildProcess);
await round(withExeca);
const results: { childProcess: number[]; execa: number[] } = { childProcess: [], execa: [] };
for (let i = 0; i < rounds; i++) {
  // Alternating which goes first, so that a slow phase of the machine falls on both.
  const order: ["childProcess" | "execa", Spawn][] = i % 2 === 0 ? [["childProcess", withChildProcess], ["execa", withExeca]] : [["execa", withExeca], ["childProcess", withChildProcess]];
  for (const [name, run] of order) results[name].push(await round(run));
}
closeSync(devNull);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const cp = median(results.childProcess);
const ex = median(results.execa);
console.log(JSON.stringify({ count, rounds, concurrency, childProcessCpuMsPerTask: cp, execaCpuMsPerTask: ex, execaExtraMs: ex - cp, rounds_ms: results, keep: ex - cp <= 0.3 ? "execa" : "child_process" }, (_, v: unknown) => (typeof v === "number" ? Math.round(v * 1000) / 1000 : v)));
