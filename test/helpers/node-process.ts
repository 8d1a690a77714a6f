import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { allProcesses } from "./proc.js";

/*
 * A node run as `drce serve` in a child process, so that its memory, file descriptors and
 * children can be measured from /proc without the test's own allocations in the figures.
 */

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** A `drce serve` child process listening on a random loopback port. */
export interface NodeProcess {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly url: string;
  /** The ZeroMQ endpoint, or "" when the gateway is off. */
  readonly zmqEndpoint: string;
  readonly dataDir: string;
  readonly client: Client<typeof TaskService>;
  /**
   * A client that accepts no compression: output travels as the bytes the task wrote (a
   * gzip-accepting client would get a GiB of zeros as a few hundred kilobytes).
   */
  readonly rawClient: Client<typeof TaskService>;
  /** The node's log so far (JSON lines from stderr). */
  log(): string;
  /** SIGTERM, wait for the exit, remove the data directory. */
  stop(): Promise<void>;
}

/**
 * Starts `drce serve --listen 127.0.0.1:0` with the given extra flags and a fresh data
 * directory, and waits for its "listening" log line. The child gets none of the test's
 * DRCE_* variables besides those in `env`.
 */
export async function spawnNodeProcess(flags: readonly string[] = [], env: NodeJS.ProcessEnv = {}, nodeOptions: readonly string[] = []): Promise<NodeProcess> {
  const dataDir = await mkdtemp(join(tmpdir(), "drce-proc-"));
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(childEnv)) if (name.startsWith("DRCE_")) delete childEnv[name];
  Object.assign(childEnv, env);
  const hasZmq = flags.includes("--zmq-listen");
  const proc = spawn(
    process.execPath,
    [...nodeOptions, "--import", "tsx", "src/main.ts", "serve", "--listen", "127.0.0.1:0", ...(hasZmq ? [] : ["--no-zmq"]), "--no-admin-zmq", "--log-level", "info", "--data-dir", dataDir, ...flags],
    { cwd: repoRoot, env: childEnv, stdio: ["ignore", "ignore", "pipe"] },
  );
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  let log = "";
  const listening = await new Promise<{ url: string; zmq: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start in time; log:\n${log}`)), 60_000);
    let pending = "";
    proc.stderr!.setEncoding("utf8");
    proc.stderr!.on("data", (chunk: string) => {
      // Keep the log bounded: a load test logs a line per state change.
      log = (log + chunk).slice(-200_000);
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.includes("drce node listening")) continue;
        const entry = JSON.parse(line) as { url?: string; zmq?: string };
        clearTimeout(timer);
        resolve({ url: entry.url ?? "", zmq: entry.zmq ?? "" });
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`node exited before listening; log:\n${log}`));
    });
  });
  const client = createClient(TaskService, createConnectTransport({ baseUrl: listening.url, httpVersion: "2" }));
  return {
    proc,
    pid: proc.pid!,
    url: listening.url,
    zmqEndpoint: listening.zmq,
    dataDir,
    client,
    rawClient: createClient(TaskService, createConnectTransport({ baseUrl: listening.url, httpVersion: "2", acceptCompression: [] })),
    log: () => log,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGTERM");
        const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Resident and peak resident memory of a process, in bytes (/proc/<pid>/status). */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/** CPU seconds a process has used (user + system, /proc/<pid>/stat), its children excluded. */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat, in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resets a process's peak resident memory (VmHWM) to its current RSS. */
export function resetPeakMemory(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
}

/** Targets of a process's open file descriptors (/proc/<pid>/fd). */
export function openFiles(pid: number): string[] {
  const targets: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      targets.push(readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      // closed while listing
    }
  }
  return targets;
}

/**
 * Children and grandchildren of a process: a node's tasks are children of its spawner,
 * which is the node's child (and stays in the node's process group).
 */
export function familyOf(pid: number): { pid: number; ppid: number; state: string; pgid: number; name: string }[] {
  const all = allProcesses();
  const children = new Set(all.filter((p) => p.ppid === pid).map((p) => p.pid));
  return all
    .filter((p) => p.ppid === pid || children.has(p.ppid))
    .map(({ pid: member, ppid, state, pgid, name }) => ({ pid: member, ppid, state, pgid, name }));
}
