/*
 * Fan-out through a manager against the ssh tools a fleet operator would otherwise use:
 *   1. 20 data nodes (`drce serve --name node-NN`, each its own process on loopback) listed by
 *      one manager (`drce serve --role manager --node URL ...`);
 *   2. `drce run --all -- uname -a` against the manager, timed as a whole process (start-up,
 *      connection, the fan-out, every node's output, the summary);
 *   3. the same command by `parallel-ssh -p 20 -i` and by `ansible all -f 20 -m command`, over
 *      ssh with a key to 20 host entries (distinct names, all 127.0.0.1) of the private
 *      loopback sshd of the SSH tests (test/helpers/sshd.ts), timed as whole processes too;
 *   4. a balanced single task (RunTask of `true`, as `drce run -- true` sends it) through the
 *      manager against the same task sent to one of the nodes directly, alternating, per task.
 * Each round also times `drce --version`, the CLI's start-up alone, as the floor of any drce
 * command. The three fan-out commands run round by round in turn, so the load other programs put on
 * the machine moves them alike. parallel-ssh and ansible (Debian packages pssh and ansible)
 * are installed with apt-get when missing; when that is impossible, or no sshd can run here,
 * the baseline is reported missing, never guessed. Without a manager role (`drce serve
 * --role manager`), only the parts that need none are measured.
 *
 * Run: node --import tsx bench/fanout.ts [--smoke]   (--smoke: 4 nodes, 1 round, 20 tasks)
 * The last line of stdout is the figures as JSON (bench/run.ts reads it).
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { TaskSpecSchema, TaskState } from "../gen/drce/v1/task_pb.js";
import { TaskService } from "../gen/drce/v1/task_service_pb.js";
import { generateKey, keyUser, sshdUnavailableReason, startSshd, type TestSshd } from "../test/helpers/sshd.js";
import { quantile, root, startBenchNode, waitForCluster, type BenchNode } from "./lib.js";

const run = promisify(execFile);
const smoke = process.argv.includes("--smoke") || process.env["BENCH_SMOKE"] === "1";
const sizes = smoke ? { nodes: 4, rounds: 1, singleTasks: 20 } : { nodes: 20, rounds: 5, singleTasks: 200 };
const log = (text: string): void => void process.stderr.write(`fanout: ${text}\n`);

/** The figures this script prints; a figure it could not measure is null, with the reason in `missing`. */
export interface FanoutFigures {
  readonly nodes: number;
  readonly rounds: number;
  /** Median wall time of `drce run --all -- uname -a`, ms. */
  readonly drceMs: number | null;
  /** Median wall time of `drce --version`, ms: the CLI's start-up, the floor of any drce command. */
  readonly cliStartMs: number | null;
  /** Median wall time of `parallel-ssh -p N -i uname -a`, ms. */
  readonly psshMs: number | null;
  /** Median wall time of `ansible all -f N -m command -a 'uname -a'`, ms. */
  readonly ansibleMs: number | null;
  /** Per-task figures of RunTask `true`, ms: sent to a node directly, and through the manager. */
  readonly directMedianMs: number | null;
  readonly directP99Ms: number | null;
  readonly managerMedianMs: number | null;
  readonly managerP99Ms: number | null;
  readonly singleTasks: number;
  /** Versions of the baselines as dpkg reports them. */
  readonly psshVersion: string | null;
  readonly ansibleVersion: string | null;
  /** One-minute load average before and after the run. */
  readonly loadBefore: number;
  readonly loadAfter: number;
  /** Why a figure is missing. */
  readonly missing: readonly string[];
}

const missing: string[] = [];
const median = (values: readonly number[]): number | null => (values.length === 0 ? null : quantile(values, 0.5));

/** The installed version of a Debian package, or undefined. */
async function packageVersion(name: string): Promise<string | undefined> {
  try {
    const { stdout } = await run("dpkg-query", ["-W", "-f", "${Version}", name]);
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The ansible package's version with that of the ansible-core it runs on. */
async function ansibleVersion(): Promise<string | null> {
  const [bundle, core] = [await packageVersion("ansible"), await packageVersion("ansible-core")];
  if (bundle === undefined) return null;
  return core === undefined ? bundle : `${bundle}, ansible-core ${core}`;
}

/** Installs pssh and ansible with apt-get when a binary is missing; false when that cannot be done. */
async function ensureBaselineTools(): Promise<void> {
  const have = (): boolean => existsSync("/usr/bin/parallel-ssh") && existsSync("/usr/bin/ansible");
  if (have()) return;
  log("installing the baselines: apt-get install -y pssh ansible");
  const install = async (): Promise<boolean> => {
    try {
      await run("apt-get", ["install", "-y", "-q", "pssh", "ansible"], { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" }, maxBuffer: 64 * 1024 * 1024 });
      return have();
    } catch (error) {
      log(`apt-get install failed: ${(error as Error).message.split("\n")[0]}`);
      return false;
    }
  };
  if (await install()) return;
  // A fresh machine has no package lists yet.
  await run("apt-get", ["update", "-q"], { maxBuffer: 64 * 1024 * 1024 }).catch(() => undefined); // the install below says whether it helped
  await install();
}

/** Runs a command to its end and times it as a whole process; its stdout is kept for checking. */
async function timed(file: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<{ ms: number; code: number | null; stdout: string; stderr: string }> {
  const started = performance.now();
  const child = spawn(file, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const [code] = (await once(child, "close")) as [number | null];
  return { ms: performance.now() - started, code, stdout, stderr };
}

/** The ssh side: 20 host names for one loopback sshd, and the two tools' command lines. */
interface SshFleet {
  readonly hosts: readonly string[];
  pssh(): Promise<number>;
  ansible(): Promise<number>;
  stop(): Promise<void>;
}

async function startSshFleet(work: string, count: number): Promise<SshFleet | undefined> {
  const reason = sshdUnavailableReason();
  if (reason !== undefined) {
    missing.push(`ssh baselines: ${reason}`);
    return undefined;
  }
  await ensureBaselineTools();
  const sshd: TestSshd = await startSshd();
  const key = await generateKey(sshd.dir, "fanout_key");
  await appendFile(join(sshd.dir, "keys", `${keyUser}.keys`), await readFile(key.publicKeyFile));
  const hosts = Array.from({ length: count }, (_, i) => `host-${String(i + 1).padStart(2, "0")}`);
  const dir = join(work, "ssh");
  await mkdir(join(dir, "ansible-cp"), { recursive: true });
  const config = join(dir, "ssh_config");
  await writeFile(
    config,
    hosts
      .map((host) =>
        [
          `Host ${host}`,
          "  HostName 127.0.0.1",
          `  Port ${sshd.port}`,
          `  User ${keyUser}`,
          `  IdentityFile ${key.privateKeyFile}`,
          "  IdentitiesOnly yes",
          `  UserKnownHostsFile ${sshd.knownHostsFile}`,
          "  StrictHostKeyChecking yes",
          "  BatchMode yes",
          "",
        ].join("\n"),
      )
      .join(""),
  );
  const hostsFile = join(dir, "hosts");
  await writeFile(hostsFile, `${hosts.join("\n")}\n`);
  const inventory = join(dir, "inventory.ini");
  await writeFile(
    inventory,
    ["[fleet]", ...hosts.map((host) => `${host} ansible_host=127.0.0.1 ansible_port=${sshd.port} ansible_user=${keyUser} ansible_ssh_private_key_file=${key.privateKeyFile}`), ""].join("\n"),
  );
  const python = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  const ansibleEnv: NodeJS.ProcessEnv = {
    ...process.env,
    ANSIBLE_HOST_KEY_CHECKING: "False",
    ANSIBLE_PYTHON_INTERPRETER: python,
    ANSIBLE_NOCOLOR: "1",
    ANSIBLE_LOCAL_TEMP: join(dir, "ansible-local"),
    ANSIBLE_SSH_CONTROL_PATH_DIR: join(dir, "ansible-cp"),
  };
  const psshInstalled = existsSync("/usr/bin/parallel-ssh");
  const ansibleInstalled = existsSync("/usr/bin/ansible");
  if (!psshInstalled) missing.push("parallel-ssh: not installed and apt-get could not install pssh");
  if (!ansibleInstalled) missing.push("ansible: not installed and apt-get could not install ansible");
  return {
    hosts,
    async pssh() {
      if (!psshInstalled) return Number.NaN;
      const result = await timed("/usr/bin/parallel-ssh", ["-h", hostsFile, "-p", String(count), "-t", "120", "-i", "-x", `-F ${config}`, "uname", "-a"]);
      const ok = (result.stdout.match(/\[SUCCESS\]/g) ?? []).length;
      if (result.code !== 0 || ok !== count) throw new Error(`parallel-ssh: ${ok} of ${count} hosts answered (exit ${result.code}): ${(result.stdout + result.stderr).slice(-800)} ${sshd.log().slice(-400)}`);
      return result.ms;
    },
    async ansible() {
      if (!ansibleInstalled) return Number.NaN;
      const result = await timed("/usr/bin/ansible", ["all", "-i", inventory, "-f", String(count), "-m", "command", "-a", "uname -a"], ansibleEnv);
      const ok = (result.stdout.match(/\| CHANGED \|/g) ?? []).length;
      if (result.code !== 0 || ok !== count) throw new Error(`ansible: ${ok} of ${count} hosts answered (exit ${result.code}): ${(result.stdout + result.stderr).slice(-800)}`);
      return result.ms;
    },
    async stop() {
      // Ansible's ssh keeps its connections open as masters (ControlPersist); they end with the server's.
      await sshd.killConnections();
      await sshd.stop();
    },
  };
}

/** Whether this drce has the manager role. */
function managerAvailable(): boolean {
  const help = execFileSync(process.execPath, ["bin/drce.cjs", "serve", "--help"], { cwd: root, encoding: "utf8" });
  return /--role\b/.test(help);
}

/** Starts the data nodes, a few at a time (each start spends a second of CPU). */
async function startDataNodes(work: string, count: number): Promise<BenchNode[]> {
  const nodes: BenchNode[] = [];
  const names = Array.from({ length: count }, (_, i) => `node-${String(i + 1).padStart(2, "0")}`);
  for (let i = 0; i < names.length; i += 4) {
    const batch = names.slice(i, i + 4);
    nodes.push(...(await Promise.all(batch.map((name) => startBenchNode({ dataDir: join(work, name), args: ["--name", name] })))));
  }
  return nodes;
}

/** One attached run of `true`, to its result, in ms. */
async function runTrue(client: Client<typeof TaskService>): Promise<number> {
  const started = performance.now();
  let state = TaskState.UNSPECIFIED;
  for await (const message of client.runTask({ task: create(TaskSpecSchema, { command: "true" }) })) {
    if (message.event.case === "result") state = message.event.value.state;
  }
  if (state !== TaskState.FINISHED) throw new Error(`RunTask true ended in state ${state}`);
  return performance.now() - started;
}

async function main(): Promise<FanoutFigures> {
  execFileSync(process.execPath, ["bin/build.js"], { cwd: root, stdio: "inherit" });
  const loadBefore = loadavg()[0] ?? 0;
  const work = await mkdtemp(join(tmpdir(), "drce-bench-fanout-"));
  let fleet: SshFleet | undefined;
  let nodes: BenchNode[] = [];
  let manager: BenchNode | undefined;
  const drce: number[] = [];
  const cliStart: number[] = [];
  const pssh: number[] = [];
  const ansible: number[] = [];
  const direct: number[] = [];
  const through: number[] = [];
  try {
    fleet = await startSshFleet(work, sizes.nodes);
    const hasManager = managerAvailable();
    if (!hasManager) missing.push("drce figures through a manager: this drce has no `serve --role manager`");
    nodes = await startDataNodes(work, sizes.nodes);
    log(`${nodes.length} data nodes up`);
    if (hasManager) {
      // A node is down after --node-timeout-ms without an answer to the manager's polls; on a
      // machine this loaded, ansible's 20 connections at once delayed the polls past the 15 s
      // default, and a fan-out measured then would reach fewer nodes.
      const managerArgs = ["--name", "manager", "--role", "manager", "--node-timeout-ms", "120000", ...nodes.flatMap((node) => ["--node", node.url])];
      manager = await startBenchNode({ dataDir: join(work, "manager"), args: managerArgs });
      await waitForCluster(manager.url, nodes.length);
      log(`manager up with ${nodes.length} nodes`);
    }
    const cli = (args: readonly string[]) => timed(process.execPath, ["bin/drce.cjs", ...args], { ...process.env, DRCE_SERVER: manager?.url ?? "" });

    // Warm-up: page cache, ssh host keys, ansible's first connections and fact cache.
    if (manager !== undefined) await cli(["run", "--all", "--", "uname", "-a"]);
    if (fleet !== undefined) {
      await fleet.pssh();
      await fleet.ansible();
    }
    for (let round = 0; round < sizes.rounds; round++) {
      if (manager !== undefined) {
        // Membership is not what is timed: every node is up before the round starts.
        await waitForCluster(manager.url, nodes.length);
        const result = await cli(["run", "--all", "--", "uname", "-a"]);
        const lines = result.stdout.split("\n").filter((line) => / \| Linux /.test(line)).length;
        if (result.code !== 0 || lines !== nodes.length) throw new Error(`drce run --all: ${lines} of ${nodes.length} nodes answered (exit ${result.code}): ${result.stderr.slice(-800)}`);
        drce.push(result.ms);
      }
      cliStart.push((await cli(["--version"])).ms);
      if (fleet !== undefined) {
        const p = await fleet.pssh();
        if (Number.isFinite(p)) pssh.push(p);
        const a = await fleet.ansible();
        if (Number.isFinite(a)) ansible.push(a);
      }
      log(`round ${round + 1}: drce ${drce.at(-1)?.toFixed(0) ?? "-"} ms (drce --version ${cliStart.at(-1)?.toFixed(0)} ms), parallel-ssh ${pssh.at(-1)?.toFixed(0) ?? "-"} ms, ansible ${ansible.at(-1)?.toFixed(0) ?? "-"} ms`);
    }

    // A single task: to a node directly, and through the manager (balanced), alternating.
    const node = nodes[0];
    if (node !== undefined) {
      const viaManager = manager === undefined ? undefined : createClient(TaskService, createConnectTransport({ baseUrl: manager.url, httpVersion: "2" }));
      for (let i = 0; i < 10; i++) {
        await runTrue(node.client);
        if (viaManager !== undefined) await runTrue(viaManager);
      }
      for (let i = 0; i < sizes.singleTasks; i++) {
        direct.push(await runTrue(node.client));
        if (viaManager !== undefined) through.push(await runTrue(viaManager));
      }
      log(`single task: direct median ${median(direct)?.toFixed(2)} ms, through the manager ${median(through)?.toFixed(2)} ms`);
    }
  } finally {
    await manager?.stop();
    await Promise.all(nodes.map((node) => node.stop()));
    await fleet?.stop();
    await rm(work, { recursive: true, force: true });
  }
  return {
    nodes: sizes.nodes,
    rounds: sizes.rounds,
    drceMs: median(drce),
    cliStartMs: median(cliStart),
    psshMs: median(pssh),
    ansibleMs: median(ansible),
    directMedianMs: median(direct),
    directP99Ms: direct.length === 0 ? null : quantile(direct, 0.99),
    managerMedianMs: median(through),
    managerP99Ms: through.length === 0 ? null : quantile(through, 0.99),
    singleTasks: direct.length,
    psshVersion: (await packageVersion("pssh")) ?? null,
    ansibleVersion: await ansibleVersion(),
    loadBefore,
    loadAfter: loadavg()[0] ?? 0,
    missing,
  };
}

/** The figures as a table, for a reader of stderr. */
function describe(f: FanoutFigures): string[] {
  const ms = (value: number | null): string => (value === null ? "missing" : `${value.toFixed(value < 100 ? 2 : 0)} ms`);
  const ratio = (slow: number | null, fast: number | null): string => (slow === null || fast === null ? "-" : `${(slow / fast).toFixed(2)} x`);
  return [
    `fan-out of uname -a to ${f.nodes} nodes, median of ${f.rounds}:`,
    `  drce run --all   ${ms(f.drceMs)} (drce --version alone: ${ms(f.cliStartMs)})`,
    `  parallel-ssh     ${ms(f.psshMs)} (pssh ${f.psshVersion ?? "missing"}; drce is ${ratio(f.psshMs, f.drceMs)} faster)`,
    `  ansible          ${ms(f.ansibleMs)} (ansible ${f.ansibleVersion ?? "missing"}; drce is ${ratio(f.ansibleMs, f.drceMs)} faster)`,
    `single task (RunTask true), ${f.singleTasks} each:`,
    `  to a node        median ${ms(f.directMedianMs)}, p99 ${ms(f.directP99Ms)}`,
    `  via the manager  median ${ms(f.managerMedianMs)}, p99 ${ms(f.managerP99Ms)}` +
      (f.managerMedianMs === null || f.directMedianMs === null ? "" : ` (adds ${(f.managerMedianMs - f.directMedianMs).toFixed(2)} ms at the median)`),
    `load average ${f.loadBefore.toFixed(2)} before, ${f.loadAfter.toFixed(2)} after`,
    ...f.missing.map((reason) => `missing: ${reason}`),
  ];
}

const figures = await main();
for (const line of describe(figures)) log(line);
console.log(JSON.stringify(figures));
