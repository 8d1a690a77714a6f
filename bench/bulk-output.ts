// Bulk output through the CLI against ssh over a ControlMaster connection: the wall time from
// spawning `drce run -- head -c N /dev/zero` (stdout a pipe) to its last byte and exit, and the
// same for `ssh -S <ControlMaster path> host head -c N /dev/zero`, interleaved round by round
// so that a machine loaded by others weighs on both alike; the ratios are the figures.
//
//   node --import tsx bench/bulk-output.ts [--bytes N] [--rounds R] [--cap BYTES] [--serve-args "..."]
//
// The node runs from the compiled bundle (built first, as `npm start` does) with unlimited
// output per stream unless --cap says otherwise; its peak RSS growth per run is reported too.
import { execFileSync, spawn } from "node:child_process";
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

/** Spawns a command (under GNU time, for its CPU) with stdout a pipe this process drains, as `| wc -c` would. */
async function timed(work: string, file: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<Timed> {
  const times = join(work, "time.out");
  const started = performance.now();
  const child = spawn("/usr/bin/time", ["-o", times, "-f", "%U %S", file, ...args], { cwd: root, env, stdio: ["ignore", "pipe", "inherit"] });
  let received = 0;
  child.stdout.on("data", (chunk: Buffer) => (received += chunk.length));
  const ended = once(child.stdout, "end");
  const [code] = (await once(child, "exit")) as [number | null];
  await ended;
  const ms = performance.now() - started;
  const [user, system] = (await readFile(times, "utf8")).trim().split(/\s+/).slice(-2).map(Number);
  return { ms, bytes: received, exitCode: code, cpuMs: ((user ?? 0) + (system ?? 0)) * 1000 };
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

async function main(): Promise<void> {
  if (values["no-build"] !== true) execFileSync(process.execPath, ["bin/build.js"], { cwd: root, stdio: "inherit" });
  const work = await mkdtemp(join(tmpdir(), "drce-bulk-"));
  const serveArgs = values["serve-args"] === "" ? [] : values["serve-args"].split(" ");
  const node = await startBenchNode({ dataDir: join(work, "data"), args: ["--max-output-bytes", values.cap, ...serveArgs] });
  const ssh = await startControlMaster(work);
  const env = { ...process.env, DRCE_SERVER: node.url };
  const drceRun = async (n: number): Promise<Timed & { rss: number; nodeCpuMs: number }> => {
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
    const run = await timed(work, process.execPath, ["bin/drce.cjs", "run", "--", "head", "-c", String(n), "/dev/zero"], env);
    sampling = false;
    await sampler;
    if (resettable) peak = Math.max(peak, await procMemory(node.pid, "VmHWM"));
    return { ...run, rss: peak - before, nodeCpuMs: (await treeCpuMs(node.pid)) - cpuBefore };
  };
  try {
    // Warm-up: JIT, page cache, the ControlMaster's first session.
    await drceRun(Math.min(bytes, 16 * MB));
    await ssh?.run(Math.min(bytes, 16 * MB));
    const drce: number[] = [];
    const base: number[] = [];
    const rss: number[] = [];
    const cliCpu: number[] = [];
    const nodeCpu: number[] = [];
    const sshCpu: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const d = await drceRun(bytes);
      if (d.bytes !== bytes || d.exitCode !== 0) throw new Error(`drce run delivered ${d.bytes} of ${bytes} bytes, exit ${d.exitCode}`);
      drce.push(d.ms);
      rss.push(d.rss);
      cliCpu.push(d.cpuMs);
      nodeCpu.push(d.nodeCpuMs);
      let line = `round ${round + 1}: drce ${d.ms.toFixed(0)} ms (${(bytes / MB / (d.ms / 1000)).toFixed(0)} MB/s, cpu cli ${d.cpuMs.toFixed(0)} ms node+spawner ${d.nodeCpuMs.toFixed(0)} ms, node rss +${(d.rss / MB).toFixed(1)} MB)`;
      if (ssh !== undefined) {
        const s = await ssh.run(bytes);
        if (s.bytes !== bytes) throw new Error(`ssh delivered ${s.bytes} of ${bytes} bytes (exit ${s.exitCode})`);
        base.push(s.ms);
        sshCpu.push(s.cpuMs);
        line += `, ssh -S ${s.ms.toFixed(0)} ms (${(bytes / MB / (s.ms / 1000)).toFixed(0)} MB/s, cpu ssh client+master+sshd ${s.cpuMs.toFixed(0)} ms), drce/ssh time ${(d.ms / s.ms).toFixed(2)}`;
      }
      console.error(line);
    }
    const median = (xs: readonly number[]): number => quantile(xs, 0.5);
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
    };
    console.log(JSON.stringify(summary));
  } finally {
    await ssh?.stop();
    await node.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
