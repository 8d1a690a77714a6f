/**
 * The CLI's start-up, whole process, side by side with Node.js's own: `drce run -- true`
 * against a running node, `drce --version`, and `node -e 0`, each spawned as a user's shell
 * spawns it, in interleaved rounds so that a machine loaded by others weighs on every row
 * alike. Each round runs each command twice: once timed from spawn to exit (wall), once as the
 * child of a bash whose `times` gives the CPU the process used (user + system, to the
 * millisecond), which a loaded machine distorts less than wall time. Prints the medians and their ratios to `node -e 0`.
 *
 *   node --import tsx bench/cli-start.ts [ROUNDS] [--server URL]
 *
 * Without `--server` it starts a node of its own (the bundle, as `npm start` runs it) and
 * stops it at the end. `npm run build` first, or `drce` runs through tsx (which is measured
 * then, and is slower by far).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { root, startBenchNode, type BenchNode } from "./lib.js";

/** One process's figures: wall milliseconds from spawn to exit, CPU milliseconds (user + system). */
interface Sample {
  readonly wallMs: number;
  readonly cpuMs: number;
}

/** A command measured: its label and its argument vector (the program first). */
interface Case {
  readonly label: string;
  readonly argv: readonly string[];
}

const shell = "/bin/bash";

/** Runs argv to its exit with output discarded and resolves with its wall time in ms; a non-zero exit fails the bench. */
function wall(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(argv[0] ?? "", argv.slice(1), { cwd: root, env, stdio: ["ignore", "ignore", "inherit"] });
    child.once("error", reject);
    child.once("exit", (code) => {
      const ms = performance.now() - started;
      if (code === 0) resolve(ms);
      else reject(new Error(`${argv.join(" ")} exited ${code}`));
    });
  });
}

/** Runs argv under bash and resolves with the user + system CPU it used, in ms (bash's `times`: its children's rusage, to the millisecond). */
function cpu(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(shell, ["-c", '"$@" >/dev/null; status=$?; times >&3; exit $status', "cpu", ...argv], { cwd: root, env, stdio: ["ignore", "ignore", "inherit", "pipe"] });
    let text = "";
    child.stdio[3]?.on("data", (chunk: Buffer) => (text += chunk.toString()));
    child.once("error", reject);
    child.once("close", (code) => {
      // The second line is the children's: "0m0.081s 0m0.013s".
      const seconds = (text.trim().split("\n")[1] ?? "").split(/\s+/).map((field) => {
        const match = /^(\d+)m([\d.]+)s$/.exec(field);
        return match === null ? Number.NaN : Number(match[1]) * 60 + Number(match[2]);
      });
      const total = (seconds[0] ?? Number.NaN) + (seconds[1] ?? Number.NaN);
      if (code !== 0 || Number.isNaN(total)) reject(new Error(`${argv.join(" ")} under ${shell}: exit ${code}, ${JSON.stringify(text)}`));
      else resolve(total * 1000);
    });
  });
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/**
 * Measures each case `rounds` times, interleaved (one of each per round, the order turned
 * each round), after a warm-up round that fills the page cache. Resolves with each case's
 * samples, by label.
 */
export async function measureCliStart(cases: readonly Case[], rounds: number, env: NodeJS.ProcessEnv): Promise<Map<string, Sample[]>> {
  const samples = new Map<string, Sample[]>(cases.map((item) => [item.label, []]));
  for (const item of cases) await wall(item.argv, env);
  const withCpu = existsSync(shell);
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? cases : [...cases].reverse();
    for (const item of order) {
      const wallMs = await wall(item.argv, env);
      const cpuMs = withCpu ? await cpu(item.argv, env) : Number.NaN;
      samples.get(item.label)?.push({ wallMs, cpuMs });
    }
  }
  return samples;
}

/** The three cases of the bench, for a node at `server`. */
export function cliStartCases(): Case[] {
  const node = process.execPath;
  return [
    { label: "node -e 0", argv: [node, "-e", "0"] },
    { label: "drce --version", argv: [node, "bin/drce.cjs", "--version"] },
    { label: "drce run -- true", argv: [node, "bin/drce.cjs", "run", "--", "true"] },
  ];
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const serverAt = args.indexOf("--server");
  const server = serverAt >= 0 ? args[serverAt + 1] : undefined;
  const rounds = Number(args.find((arg, index) => /^\d+$/.test(arg) && args[index - 1] !== "--server") ?? 30);
  let node: BenchNode | undefined;
  let dataDir: string | undefined;
  if (server === undefined) {
    dataDir = await mkdtemp(join(tmpdir(), "drce-cli-start-"));
    node = await startBenchNode({ dataDir });
  }
  try {
    const env = { ...process.env, DRCE_SERVER: server ?? node?.url ?? "" };
    const samples = await measureCliStart(cliStartCases(), rounds, env);
    const base = samples.get("node -e 0") ?? [];
    const baseWall = median(base.map((s) => s.wallMs));
    const baseCpu = median(base.map((s) => s.cpuMs));
    console.log(`${rounds} interleaved rounds, medians (wall: spawn to exit; CPU: user + system, from bash's times)`);
    console.log(`${"command".padEnd(20)} ${"wall ms".padStart(8)} ${"x node".padStart(7)} ${"CPU ms".padStart(8)} ${"x node".padStart(7)}`);
    for (const [label, list] of samples) {
      const wallMs = median(list.map((s) => s.wallMs));
      const cpuMs = median(list.map((s) => s.cpuMs));
      console.log(`${label.padEnd(20)} ${wallMs.toFixed(1).padStart(8)} ${(wallMs / baseWall).toFixed(2).padStart(7)} ${cpuMs.toFixed(0).padStart(8)} ${(cpuMs / baseCpu).toFixed(2).padStart(7)}`);
    }
  } finally {
    await node?.stop();
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
