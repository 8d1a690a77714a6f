// Bulk output through the CLI against ssh over a ControlMaster connection: the wall time from
// spawning `drce run -- head -c N /dev/zero` (stdout a pipe) to its last byte and exit, and the
// same for `ssh -S <ControlMaster path> host head -c N /dev/zero`, interleaved round by round
// so that a machine loaded by others weighs on both alike; the ratios are the figures.
//
//   node --import tsx bench/bulk-output.ts [--bytes N] [--rounds R] [--cap BYTES] [--serve-args "..."]
//
// The node runs from the compiled bundle (built first, as `npm start` does) with unlimited
// output per stream unless --cap says otherwise; its peak RSS growth per run is reported too.
//
// In the same rounds it times the floor, what any design that keeps output durable must do on
// this machine: a bare Node.js process that runs the command, reads its pipe and writes each
// chunk to a file, then fdatasyncs it ("floor: node to file"); the same writing each chunk to
// its own stdout pipe too, a node and its client in one process without a network ("floor:
// node to file and pipe"); and ssh -S to the pipe. Each drce round is also split into its
// steps, in ms from the CLI's spawn: the task accepted and spawned (the node's events, as a
// WatchTaskEvents caller receives them), the first byte on the CLI's pipe, the command's exit
// (the command itself writes the time), the spools finished (the task's finished_at), the final
// state published (after the status and the output are durable), the last byte, the CLI's exit.
import { execFileSync, spawn } from "node:child_process";
import { TaskState } from "../gen/drce/v1/task_pb.js";
import { once } from "node:events";
import { appendFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { generateKey, keyUser, sshdAvailable, sshdUnavailableReason, startSshd } from "../test/helpers/sshd.js";
import { procMemory, quantile, resetPeakRss, root, sleep, startBenchNode } from "./lib.js";

const { values } = parseArgs({
  options: {
    bytes: { type: "string", default: String(100 * 1000 * 1000) },
    rounds: { type: "string", default: "5" },
    cap: { type: "string", default: "0" },
    "serve-args": { type: "string", default: "" },
    "no-build": { type: "boolean", default: false },
  },
});
const bytes = Number(values.bytes);
const rounds = Number(values.rounds);
const MB = 1e6;

/** One timed run: wall ms from spawn to the pipe's end and the exit, what arrived, and the command's own CPU ms. */
interface Timed {
  readonly ms: number;
  readonly bytes: number;
  readonly exitCode: number | null;
  readonly cpuMs: number;
}

/** When a timed run's steps happened, as Unix ms (Date.now()), seen from this process. */
interface Marks {
  readonly spawnedAt: number;
  readonly firstByteAt: number;
  readonly lastByteAt: number;
  readonly exitAt: number;
}

/** Spawns a command (under GNU time, for its CPU) with stdout a pipe this process drains, as `| wc -c` would. */
async function timed(work: string, file: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<Timed & { marks: Marks }> {
  const times = join(work, "time.out");
  const spawnedAt = Date.now();
  const started = performance.now();
  const child = spawn("/usr/bin/time", ["-o", times, "-f", "%U %S", file, ...args], { cwd: root, env, stdio: ["ignore", "pipe", "inherit"] });
  let received = 0;
  let firstByteAt = 0;
  let lastByteAt = 0;
  child.stdout.on("data", (chunk: Buffer) => {
    if (received === 0) firstByteAt = Date.now();
    received += chunk.length;
    lastByteAt = Date.now();
  });
  const ended = once(child.stdout, "end");
  const [code] = (await once(child, "exit")) as [number | null];
  const exitAt = Date.now();
  await ended;
  const ms = performance.now() - started;
  const [user, system] = (await readFile(times, "utf8")).trim().split(/\s+/).slice(-2).map(Number);
  return { ms, bytes: received, exitCode: code, cpuMs: ((user ?? 0) + (system ?? 0)) * 1000, marks: { spawnedAt, firstByteAt, lastByteAt, exitAt } };
}

/**
 * The floor's process: runs the command given as its arguments, reads its stdout pipe (Node's
 * 64 KiB reads), writes each chunk to the file named by FLOOR_FILE with a synchronous write (the
 * page cache; no thread pool round trip), and with FLOOR_PIPE=1 to its own stdout too, waiting
 * for the pipe to drain as a client would; at the end it fdatasyncs the file, and reports the
 * sync's ms on stderr as its last line.
 */
const floorScript = `
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const fd = fs.openSync(process.env.FLOOR_FILE, "w", 0o600);
const pipe = process.env.FLOOR_PIPE === "1";
const child = spawn(process.argv[1], process.argv.slice(2), { stdio: ["ignore", "pipe", "inherit"] });
let at = 0;
child.stdout.on("data", (chunk) => {
  for (let done = 0; done < chunk.length; ) done += fs.writeSync(fd, chunk, done, chunk.length - done, at + done);
  at += chunk.length;
  if (pipe && !process.stdout.write(chunk)) {
    child.stdout.pause();
    process.stdout.once("drain", () => child.stdout.resume());
  }
});
child.on("close", () => {
  const before = performance.now();
  fs.fdatasyncSync(fd);
  const syncMs = performance.now() - before;
  fs.closeSync(fd);
  const done = () => process.stderr.write("floor-sync-ms " + syncMs.toFixed(1) + "\\n");
  if (pipe) process.stdout.end(done); else done();
});
`;

/** One floor run: its wall, its CPU, and the fdatasync at its end. */
async function floorRun(work: string, n: number, pipe: boolean): Promise<Timed & { syncMs: number }> {
  const file = join(work, "floor.out");
  const report = join(work, "floor.err");
  const env = { ...process.env, FLOOR_FILE: file, FLOOR_PIPE: pipe ? "1" : "0" };
  // The sync's ms go through a file: the floor's stderr is the bench's.
  const run = await timed(work, "/bin/sh", ["-c", `"$0" -e "$1" head -c ${n} /dev/zero 2>"$2"`, process.execPath, floorScript, report], env);
  const text = await readFile(report, "utf8");
  await rm(file, { force: true });
  const syncMs = Number(/floor-sync-ms (\S+)/.exec(text)?.[1] ?? Number.NaN);
  if (!pipe) return { ...run, bytes: n, syncMs };
  return { ...run, syncMs };
}

/** CPU ms (user + system) of one process so far, its reaped children excluded. */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10; // USER_HZ is 100
}

/** The pids below a process, children first. */
async function descendants(pid: number): Promise<number[]> {
  const children = (await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "")).trim().split(/\s+/).filter(Boolean).map(Number);
  const below = await Promise.all(children.map((child) => descendants(child)));
  return [...children, ...below.flat()];
}

/** CPU ms a node and its spawner have used so far (the commands they ran are not counted). */
async function treeCpuMs(pid: number): Promise<number> {
  const children = (await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "")).trim().split(/\s+/).filter(Boolean).map(Number);
  let total = await cpuMs(pid);
  for (const child of children) total += await cpuMs(child).catch(() => 0);
  return total;
}

/** CPU ms the ssh side has used so far: the ControlMaster and every sshd process of the private sshd (its shells and commands not counted). */
async function sshSideCpuMs(masterPid: number, sshdPid: number): Promise<number> {
  let total = await cpuMs(masterPid).catch(() => 0);
  for (const pid of await descendants(sshdPid)) {
    const comm = (await readFile(`/proc/${pid}/comm`, "utf8").catch(() => "")).trim();
    if (comm.startsWith("sshd")) total += await cpuMs(pid).catch(() => 0);
  }
  return total;
}

/** A private sshd with a ControlMaster connection to it, or undefined when none can run here. */
async function startControlMaster(work: string): Promise<{ run(n: number): Promise<Timed>; stop(): Promise<void> } | undefined> {
  if (!sshdAvailable()) {
    console.error(`ssh baseline skipped: ${sshdUnavailableReason()}`);
    return undefined;
  }
  const sshd = await startSshd();
  const key = await generateKey(sshd.dir, "bench_key");
  await appendFile(join(sshd.dir, "keys", `${keyUser}.keys`), await readFile(key.publicKeyFile));
  const control = join(work, "cm.sock");
  const common = ["-p", String(sshd.port), "-i", key.privateKeyFile, "-o", `UserKnownHostsFile=${sshd.knownHostsFile}`, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", `ControlPath=${control}`];
  const host = `${keyUser}@127.0.0.1`;
  execFileSync("ssh", [...common, "-M", "-N", "-f", host], { stdio: "inherit" });
  const check = execFileSync("ssh", ["-S", control, "-O", "check", host], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).toString();
  const masterPid = Number(/pid=(\d+)/.exec(check)?.[1] ?? 0);
  return {
    async run(n) {
      const before = await sshSideCpuMs(masterPid, sshd.pid);
      const run = await timed(work, "ssh", ["-S", control, "-o", "BatchMode=yes", host, `head -c ${n} /dev/zero`]);
      return { ...run, cpuMs: run.cpuMs + (await sshSideCpuMs(masterPid, sshd.pid)) - before };
    },
    async stop() {
      try {
        execFileSync("ssh", ["-S", control, "-O", "exit", host], { stdio: "ignore" });
      } finally {
        await sshd.stop();
      }
    },
  };
}

/** One drce round's steps in ms from the CLI's spawn (see the header). */
interface Split {
  accepted: number;
  spawned: number;
  firstByte: number;
  commandExit: number;
  spoolsFinished: number;
  finalDurable: number;
  lastByte: number;
  exit: number;
}

async function main(): Promise<void> {
  if (values["no-build"] !== true) execFileSync(process.execPath, ["bin/build.js"], { cwd: root, stdio: "inherit" });
  const work = await mkdtemp(join(tmpdir(), "drce-bulk-"));
  const serveArgs = values["serve-args"] === "" ? [] : values["serve-args"].split(" ");
  const node = await startBenchNode({ dataDir: join(work, "data"), args: ["--max-output-bytes", values.cap, ...serveArgs] });
  const ssh = await startControlMaster(work);
  const env = { ...process.env, DRCE_SERVER: node.url };
  // The node's events as a watcher receives them: a state is published once it is durable.
  const seen: { id: string; state: TaskState; at: number; finishedAt: number }[] = [];
  const watching = new AbortController();
  const watcher = (async () => {
    for await (const message of node.client.watchTaskEvents({}, { signal: watching.signal })) {
      const event = message.event;
      if (event !== undefined) seen.push({ id: event.id, state: event.state, at: Date.now(), finishedAt: Number(event.timeUnixMs) });
    }
  })().catch(() => undefined); // ended by the abort at the end of the bench
  const exitMark = join(work, "exit.mark");
  const drceRun = async (n: number): Promise<Timed & { rss: number; nodeCpuMs: number; split: Split }> => {
    const before = await procMemory(node.pid, "VmRSS");
    const cpuBefore = await treeCpuMs(node.pid);
    const resettable = await resetPeakRss(node.pid);
    let peak = before;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await procMemory(node.pid, "VmRSS").catch(() => 0));
        await sleep(20);
      }
    })();
    const from = seen.length;
    // The command writes the time it ended at (date's, in Unix ms) to a file beside its output.
    const run = await timed(work, process.execPath, ["bin/drce.cjs", "run", "--", "/bin/sh", "-c", `head -c ${n} /dev/zero; date +%s%3N > ${exitMark}`], env);
    sampling = false;
    await sampler;
    if (resettable) peak = Math.max(peak, await procMemory(node.pid, "VmHWM"));
    const nodeCpuMs = (await treeCpuMs(node.pid)) - cpuBefore;
    // The final event may reach the watcher after the CLI exits: wait for it, with a deadline.
    const deadline = Date.now() + 5000;
    while (!seen.slice(from).some((event) => event.state === TaskState.FINISHED) && Date.now() < deadline) await sleep(5);
    const events = seen.slice(from);
    const at = (state: TaskState): number => events.find((event) => event.state === state)?.at ?? Number.NaN;
    const final = events.find((event) => event.state === TaskState.FINISHED);
    const t0 = run.marks.spawnedAt;
    const split: Split = {
      accepted: at(TaskState.NEW) - t0,
      spawned: at(TaskState.IN_PROGRESS) - t0,
      firstByte: run.marks.firstByteAt - t0,
      commandExit: Number((await readFile(exitMark, "utf8")).trim()) - t0,
      spoolsFinished: (final?.finishedAt ?? Number.NaN) - t0,
      finalDurable: (final?.at ?? Number.NaN) - t0,
      lastByte: run.marks.lastByteAt - t0,
      exit: run.marks.exitAt - t0,
    };
    return { ...run, rss: peak - before, nodeCpuMs, split };
  };
  const splitText = (split: Split): string =>
    Object.entries(split)
      .map(([name, ms]) => `${name} ${ms.toFixed(0)}`)
      .join(", ");
  try {
    // Warm-up: JIT, page cache, the ControlMaster's first session.
    await drceRun(Math.min(bytes, 16 * MB));
    await ssh?.run(Math.min(bytes, 16 * MB));
    await floorRun(work, Math.min(bytes, 16 * MB), true);
    const drce: number[] = [];
    const base: number[] = [];
    const rss: number[] = [];
    const cliCpu: number[] = [];
    const nodeCpu: number[] = [];
    const sshCpu: number[] = [];
    const floorFile: number[] = [];
    const floorFileCpu: number[] = [];
    const floorFileSync: number[] = [];
    const floorPipe: number[] = [];
    const floorPipeCpu: number[] = [];
    const splits: Split[] = [];
    for (let round = 0; round < rounds; round++) {
      const d = await drceRun(bytes);
      if (d.bytes !== bytes || d.exitCode !== 0) throw new Error(`drce run delivered ${d.bytes} of ${bytes} bytes, exit ${d.exitCode}`);
      drce.push(d.ms);
      rss.push(d.rss);
      cliCpu.push(d.cpuMs);
      nodeCpu.push(d.nodeCpuMs);
      splits.push(d.split);
      let line = `round ${round + 1}: drce ${d.ms.toFixed(0)} ms (${(bytes / MB / (d.ms / 1000)).toFixed(0)} MB/s, cpu cli ${d.cpuMs.toFixed(0)} ms node+spawner ${d.nodeCpuMs.toFixed(0)} ms, node rss +${(d.rss / MB).toFixed(1)} MB; ${splitText(d.split)})`;
      if (ssh !== undefined) {
        const s = await ssh.run(bytes);
        if (s.bytes !== bytes) throw new Error(`ssh delivered ${s.bytes} of ${bytes} bytes (exit ${s.exitCode})`);
        base.push(s.ms);
        sshCpu.push(s.cpuMs);
        line += `, ssh -S ${s.ms.toFixed(0)} ms (${(bytes / MB / (s.ms / 1000)).toFixed(0)} MB/s, cpu ssh client+master+sshd ${s.cpuMs.toFixed(0)} ms), drce/ssh time ${(d.ms / s.ms).toFixed(2)}`;
      }
      const f = await floorRun(work, bytes, false);
      floorFile.push(f.ms);
      floorFileCpu.push(f.cpuMs);
      floorFileSync.push(f.syncMs);
      const p = await floorRun(work, bytes, true);
      if (p.bytes !== bytes) throw new Error(`the floor delivered ${p.bytes} of ${bytes} bytes (exit ${p.exitCode})`);
      floorPipe.push(p.ms);
      floorPipeCpu.push(p.cpuMs);
      line += `, floor: node to file ${f.ms.toFixed(0)} ms (sync ${f.syncMs.toFixed(0)}, cpu ${f.cpuMs.toFixed(0)}), node to file and pipe ${p.ms.toFixed(0)} ms (sync ${p.syncMs.toFixed(0)}, cpu ${p.cpuMs.toFixed(0)})`;
      console.error(line);
    }
    const median = (xs: readonly number[]): number => quantile(xs, 0.5);
    const medianSplit = Object.fromEntries(Object.keys(splits[0]!).map((name) => [name, median(splits.map((split) => split[name as keyof Split]))]));
    const summary = {
      bytes,
      rounds,
      drceMs: median(drce),
      drceMBps: bytes / MB / (median(drce) / 1000),
      sshMs: base.length > 0 ? median(base) : undefined,
      sshMBps: base.length > 0 ? bytes / MB / (median(base) / 1000) : undefined,
      // Throughput ratio: >= 1 means drce is at least as fast as ssh.
      ratio: base.length > 0 ? median(base.map((s, i) => s / drce[i]!)) : undefined,
      nodeRssGrowthMB: Math.max(...rss) / MB,
      cliCpuMs: median(cliCpu),
      nodeCpuMs: median(nodeCpu),
      sshCpuMs: sshCpu.length > 0 ? median(sshCpu) : undefined,
      floorFileMs: median(floorFile),
      floorFileSyncMs: median(floorFileSync),
      floorFileCpuMs: median(floorFileCpu),
      floorPipeMs: median(floorPipe),
      floorPipeCpuMs: median(floorPipeCpu),
      // drce's wall against the floor's (node to file and pipe) and ssh's: 1 is as fast.
      drceOverFloor: median(drce) / median(floorPipe),
      drceOverSsh: base.length > 0 ? median(drce) / median(base) : undefined,
      drceSplitMs: medianSplit,
    };
    console.log(JSON.stringify(summary));
  } finally {
    watching.abort();
    await watcher;
    await ssh?.stop();
    await node.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
