import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClusterNodeState, NodeService } from "../gen/drce/v1/node_service_pb.js";
import { TaskService } from "../gen/drce/v1/task_service_pb.js";
import { createServiceClient } from "../src/client/service-client.js";

/** The repository root, whatever the working directory. */
export const root = fileURLToPath(new URL("..", import.meta.url));

/** A free loopback TCP port (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A node started as a child process, as an operator starts it. */
export interface BenchNode {
  readonly url: string;
  readonly zmqEndpoint: string;
  readonly pid: number;
  readonly client: Client<typeof TaskService>;
  /** Milliseconds from spawn to the first answered RPC. */
  readonly startMs: number;
  stop(): Promise<void>;
}

/** Options of {@link startBenchNode}. */
export interface BenchNodeOptions {
  readonly dataDir: string;
  /** Extra `drce serve` flags. */
  readonly args?: readonly string[];
  /** Node.js flags placed before the entry (e.g. `--cpu-prof`). */
  readonly nodeFlags?: readonly string[];
  /** A task id to probe readiness with (GetTask); otherwise ListTasks is used. */
  readonly probeTask?: string;
  /** How the node is started; default as `npm start` does. */
  readonly entry?: readonly string[];
}

/**
 * Starts `node bin/drce.cjs serve` (the compiled bundle, as `npm start` runs it) on pre-chosen
 * free ports with a silent log, and resolves once it answers an RPC.
 */
export async function startBenchNode(options: BenchNodeOptions): Promise<BenchNode> {
  const [port, zmqPort] = [await freePort(), await freePort()];
  const started = performance.now();
  const child: ChildProcess = spawn(
    process.execPath,
    [
      ...(options.nodeFlags ?? []),
      ...(options.entry ?? ["bin/drce.cjs"]),
      "serve",
      "--listen",
      `127.0.0.1:${port}`,
      "--no-admin-zmq",
      "--zmq-listen",
      `127.0.0.1:${zmqPort}`,
      "--data-dir",
      options.dataDir,
      "--log-level",
      "silent",
      ...(options.args ?? []),
    ],
    { cwd: root, stdio: ["ignore", "inherit", "inherit"] },
  );
  let exited = false;
  const exit = once(child, "exit").then(() => (exited = true));
  const url = `http://127.0.0.1:${port}`;
  // Through drce's client library, as a caller reaches a node: the figures the benches
  // print include its transport's cost per call.
  const service = createServiceClient(TaskService, { server: url, token: "" });
  const client = service.client;
  for (;;) {
    if (exited) throw new Error("the node exited before it answered");
    try {
      if (options.probeTask !== undefined) await client.getTask({ task: options.probeTask }, { timeoutMs: 2000 });
      else await client.listTasks({}, { timeoutMs: 2000 });
      break;
    } catch {
      await sleep(10);
    }
  }
  const startMs = performance.now() - started;
  return {
    url,
    zmqEndpoint: `tcp://127.0.0.1:${zmqPort}`,
    pid: child.pid ?? 0,
    client,
    startMs,
    async stop() {
      service.close();
      if (!exited) {
        child.kill("SIGTERM");
        await exit;
      }
    },
  };
}

/** Sleeps. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Clock ticks per second, in which /proc gives a process's CPU times. */
const ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** utime + stime of a process (every thread of it), ms, from /proc; zero once it is gone. */
export function processCpuMs(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "latin1");
    // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
  } catch {
    return 0; // gone: it burns nothing more
  }
}

/** A field of /proc/<pid>/status in bytes (VmRSS, VmHWM). */
export async function procMemory(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8");
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  return match === null ? 0 : Number(match[1]) * 1024;
}

/** The summed RSS of a process and every live process below it (a node and its spawner), in bytes. */
export async function treeRss(pid: number): Promise<number> {
  const parents = new Map<number, number>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // The process ended while the table was read; it holds no memory any more.
    }
  }
  const tree = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [child, parent] of parents) {
      if (tree.has(parent) && !tree.has(child)) {
        tree.add(child);
        grew = true;
      }
    }
  }
  let sum = 0;
  for (const member of tree) sum += await procMemory(member, "VmRSS").catch(() => 0); // a member that ended since holds nothing
  return sum;
}

/** Times a command run to its exit (spawn to exit), rejecting on a non-zero status; ms. */
export async function timeProcess(file: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const started = performance.now();
  const child = spawn(file, args, { cwd: root, env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, "exit")) as [number | null];
  const ms = performance.now() - started;
  if (code !== 0) throw new Error(`${file} ${args.join(" ")} exited with ${code}: ${stderr.trim().slice(-500)}`);
  return ms;
}

/** Resets a process's peak RSS (VmHWM) to its current RSS; false when the kernel refuses. */
export async function resetPeakRss(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** The q-quantile (0..1) of a list of numbers. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Runs `count` jobs with at most `concurrency` in flight; resolves with the elapsed ms. */
export async function runConcurrent(count: number, concurrency: number, job: (index: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      for (let index = next++; index < count; index = next++) await job(index);
    }),
  );
  return performance.now() - started;
}

/** Runs a child process to its end and parses the one JSON line it prints. */
export async function runJsonChild<T>(args: readonly string[]): Promise<T> {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  const [code] = (await once(child, "exit")) as [number | null];
  if (code !== 0) throw new Error(`${args.join(" ")} exited with ${code}`);
  return JSON.parse(out.trim().split("\n").pop() ?? "null") as T;
}

/** What a byte-streaming child delivered on its stdout. */
export interface Transfer {
  readonly bytes: number;
  /** Bytes per second from the first byte to the end of the stream. */
  readonly bytesPerSecond: number;
  /** Milliseconds from spawn to the first byte (start-up and connection). */
  readonly firstByteMs: number;
  /** Milliseconds from spawn to the last byte (start-up, connection and the whole stream). */
  readonly wallMs: number;
  readonly exitCode: number | null;
}

/** Spawns a command, counts the bytes of its stdout, and times the transfer. */
export async function measureTransfer(file: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<Transfer> {
  const spawned = performance.now();
  const child = spawn(file, args, { cwd: root, env, stdio: ["ignore", "pipe", "inherit"] });
  let bytes = 0;
  let first = 0;
  child.stdout.on("data", (chunk: Buffer) => {
    if (bytes === 0) first = performance.now();
    bytes += chunk.length;
  });
  const closed = once(child.stdout, "end");
  const [code] = (await once(child, "exit")) as [number | null];
  await closed;
  const last = performance.now();
  return { bytes, bytesPerSecond: first === 0 ? 0 : (bytes * 1000) / (last - first), firstByteMs: first === 0 ? 0 : first - spawned, wallMs: last - spawned, exitCode: code };
}

/**
 * The raw baseline's unit of work: `/bin/sh -c true` spawned with child_process, as a node
 * spawns a trivial task (its own process group, piped stdio), resolved on `close`.
 */
export function spawnTrue(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-c", "true"], { detached: true, stdio: ["pipe", "pipe", "pipe"], env: { PATH: "/usr/bin:/bin" } });
    child.stdin.end();
    child.stdout.resume();
    child.stderr.resume();
    child.once("error", reject);
    child.once("close", () => resolve());
  });
}

/** Polls the manager's node list until every node is up, or fails at the deadline. */
export async function waitForCluster(url: string, count: number): Promise<void> {
  const client = createClient(NodeService, createConnectTransport({ baseUrl: url, httpVersion: "2" }));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const up = await client
      .listNodes({})
      .then((reply) => reply.nodes.filter((node) => node.state === ClusterNodeState.UP).length)
      .catch(() => 0); // not answering yet: the loop polls again until the deadline
    if (up === count) return;
    if (Date.now() > deadline) throw new Error(`only ${up} of ${count} nodes are up at the manager after 60 s`);
    await sleep(100);
  }
}
