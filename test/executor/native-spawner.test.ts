import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { taskSpec } from "../../src/domain/task.js";
import { createTaskCgroup, detectCgroups } from "../../src/executor/cgroup.js";
import { createContainment } from "../../src/executor/containment.js";
import { createLocalRunner } from "../../src/executor/local-runner.js";
import { buildNativeSpawner } from "../../src/executor/native-spawner-build.js";
import { createSpawner, type SpawnRequest, type Spawner } from "../../src/executor/spawner.js";
import { liveGroupMembers } from "../helpers/proc.js";
import { isDead } from "./proc-helpers.js";

/*
 * The native spawner (src/executor/native/spawner.c): compiled with the host's cc on first
 * use, and used; the Node.js spawner where no compiler is; the orphan kill when its node
 * dies; and commands created in their control group. Real compilations, real processes,
 * real cgroups (where this host lets the tests make them).
 */

const env = { PATH: "/usr/bin:/bin" };
let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "drce-native-spawner-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const spawners: Spawner[] = [];
afterEach(async () => {
  await Promise.all(spawners.splice(0).map((spawner) => spawner.close()));
});

function collector(): Writable & { text(): string } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(Buffer.from(chunk));
      callback();
    },
  });
  return Object.assign(sink, { text: () => Buffer.concat(chunks).toString() });
}

/** Runs a command to its end: its exit, its stdout, and where its control groups stand. */
async function run(spawner: Spawner, file: string, args: string[], extra: Partial<SpawnRequest> = {}): Promise<{ code: number | null; stdout: string; placement: string; pid: number }> {
  const stdout = collector();
  const result = await spawner.spawn({ file, args, cwd: dir, env, stdout, stderr: collector(), ...extra });
  if (!result.ok) throw new Error(`spawn failed: ${result.code} ${result.message}`);
  result.process.stdin.end();
  const [exit] = await Promise.all([result.process.exit, result.process.output]);
  return { code: exit.code, stdout: stdout.text(), placement: result.process.cgroupPlacement, pid: result.process.pid };
}

describe("the native spawner", () => {
  it("is compiled into its cache directory on first use, and is what starts the commands", async () => {
    const cacheDir = join(dir, "cache-compiled");
    const spawner = createSpawner({ cacheDir });
    spawners.push(spawner);
    expect(await spawner.placesIntoCgroups?.()).toBe(true);
    const result = await run(spawner, "/bin/sh", ["-c", "echo $0"]);
    expect(result).toMatchObject({ code: 0, stdout: "/bin/sh\n", placement: "none" });
    expect(spawner.kind).toBe("native");
    const binaries = (await readdir(cacheDir)).filter((name) => !name.endsWith(".tmp"));
    expect(binaries).toHaveLength(1);
    expect(binaries[0]).toMatch(/^spawner-[0-9a-f]{16}$/);
    // The spawner process runs that binary, not Node.js.
    expect(await readlink(`/proc/${spawner.pid}/exe`)).toBe(join(cacheDir, binaries[0]!));
    // A second build finds it: the same path, nothing compiled again.
    expect(await buildNativeSpawner({ cacheDir })).toEqual({ ok: true, path: join(cacheDir, binaries[0]!) });
  });

  it("falls back to the Node.js spawner, and says why once, where there is no C compiler", async () => {
    const emptyPath = join(dir, "no-compiler");
    const reasons: string[] = [];
    const spawner = createSpawner({ cacheDir: join(dir, "cache-without-cc"), compilerPath: emptyPath, onFallback: (reason) => reasons.push(reason) });
    spawners.push(spawner);
    expect(await spawner.placesIntoCgroups?.()).toBe(false);
    const first = await run(spawner, "/bin/echo", ["one"]);
    const second = await run(spawner, "/bin/echo", ["two"]);
    expect([first.stdout, second.stdout]).toEqual(["one\n", "two\n"]);
    expect(spawner.kind).toBe("node");
    expect(reasons).toEqual(["no C compiler (cc) is on the PATH"]);
    expect(await readlink(`/proc/${spawner.pid}/exe`)).toBe(await readlink(`/proc/${process.pid}/exe`));
    await expect(readdir(join(dir, "cache-without-cc"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("falls back when the compiler fails", async () => {
    const fakeBin = join(dir, "failing-cc");
    await mkdir(fakeBin, { recursive: true });
    await writeFile(join(fakeBin, "cc"), "#!/bin/sh\necho 'cc: internal compiler error' >&2\nexit 1\n");
    await chmod(join(fakeBin, "cc"), 0o755);
    const reasons: string[] = [];
    const spawner = createSpawner({ cacheDir: join(dir, "cache-failing-cc"), compilerPath: `${fakeBin}:/usr/bin:/bin`, onFallback: (reason) => reasons.push(reason) });
    spawners.push(spawner);
    expect((await run(spawner, "/bin/echo", ["still runs"])).stdout).toBe("still runs\n");
    expect(spawner.kind).toBe("node");
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/could not be compiled: .*internal compiler error/);
  });

  it("reports a command that cannot start as the Node.js spawner does, and the exit of one killed by a signal", async () => {
    const spawner = createSpawner();
    spawners.push(spawner);
    const sinks = { stdout: new PassThrough(), stderr: new PassThrough() };
    expect(await spawner.spawn({ file: "no-such-program-anywhere", args: [], cwd: dir, env, ...sinks })).toMatchObject({ ok: false, code: "ENOENT" });
    expect(await spawner.spawn({ file: "/bin/true", args: [], cwd: join(dir, "no-such-directory"), env, ...sinks })).toMatchObject({ ok: false, code: "ENOENT" });
    expect(await spawner.spawn({ file: "/bin/true", args: [], cwd: dir, env: { A: "x\0y" }, ...sinks })).toMatchObject({ ok: false, code: "ERR_INVALID_ARG_VALUE" });
    const result = await spawner.spawn({ file: "/bin/sh", args: ["-c", "kill -USR1 $$"], cwd: dir, env, ...sinks });
    if (!result.ok) throw new Error(result.message);
    expect(await result.process.exit).toEqual({ code: null, signal: "SIGUSR1" });
    expect(spawner.kind).toBe("native");
  });
});

/** Runs test/fixtures/spawner-parent.mts in "owned" mode and resolves to the pids it prints. */
function ownedSpawnerParent(): Promise<{ parent: ChildProcess; pids: number[] }> {
  const parent = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("../fixtures/spawner-parent.mts", import.meta.url)), "owned"], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, DRCE_SPAWNER: "auto" } });
  return new Promise((resolve, reject) => {
    let text = "";
    parent.stdout!.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes("\n")) resolve({ parent, pids: text.trim().split(" ").map(Number) });
    });
    parent.once("exit", (code) => {
      if (!text.includes("\n")) reject(new Error(`spawner-parent exited with ${code} before printing`));
    });
  });
}

describe("a native spawner whose node is killed", () => {
  it("kills the whole group of every command not released, and leaves a released one", async () => {
    const { parent, pids } = await ownedSpawnerParent();
    const [spawnerPid, owned, released] = pids as [number, number, number];
    try {
      expect(await readlink(`/proc/${spawnerPid}/exe`)).toMatch(/\/spawner-[0-9a-f]{16}$/);
      await expect.poll(() => liveGroupMembers(owned).length, { timeout: 5000 }).toBe(3);
      await expect.poll(() => liveGroupMembers(released).length, { timeout: 5000 }).toBe(3);
      parent.kill("SIGKILL");
      await expect.poll(() => isDead(spawnerPid), { timeout: 10_000 }).toBe(true);
      await expect.poll(() => liveGroupMembers(owned), { timeout: 5000 }).toEqual([]);
      expect(liveGroupMembers(released)).toHaveLength(3);
    } finally {
      parent.kill("SIGKILL");
      for (const pgid of [owned, released]) {
        try {
          process.kill(-pgid, "SIGKILL");
        } catch {
          // gone already
        }
      }
    }
  });
});

const support = await detectCgroups();
const v2 = support?.version === 2 ? support : undefined;

describe.skipIf(v2 === undefined)("commands created in their control group (cgroup v2; needs root)", () => {
  /** The group's path as /proc/PID/cgroup names it on the v2 line ("0::/drce/NAME"). */
  const v2Line = (name: string): string => `0::/drce/${name}`;

  it("runs a command in its group from its first instruction: the command itself reads it there", async () => {
    const name = `nt${process.pid}.first`;
    const cgroup = await createTaskCgroup(v2!, name);
    try {
      const spawner = createSpawner();
      spawners.push(spawner);
      const result = await run(spawner, "/bin/cat", ["/proc/self/cgroup"], { cgroupDirs: cgroup.dirs });
      expect(result.placement).toBe("cloned");
      expect(result.stdout.split("\n")).toContain(v2Line(name));
    } finally {
      await cgroup.remove();
    }
  });

  it("moves a command into its groups itself before its exec where clone3 cannot (several groups, as on v1)", async () => {
    const name = `nt${process.pid}.written`;
    const cgroup = await createTaskCgroup(v2!, name);
    try {
      const spawner = createSpawner();
      spawners.push(spawner);
      const result = await run(spawner, "/bin/cat", ["/proc/self/cgroup"], { cgroupDirs: [cgroup.dirs[0]!, cgroup.dirs[0]!] });
      expect(result.placement).toBe("written");
      expect(result.stdout.split("\n")).toContain(v2Line(name));
    } finally {
      await cgroup.remove();
    }
  });

  it("still runs a command its group refuses, in its process group only, and says so", async () => {
    const spawner = createSpawner();
    spawners.push(spawner);
    const stdout = collector();
    const result = await spawner.spawn({ file: "/bin/echo", args: ["outside"], cwd: dir, env, stdout, stderr: collector(), cgroupDirs: [join(v2!.parent, `nt${process.pid}.never-made`)] });
    if (!result.ok) throw new Error(result.message);
    expect(result.process.cgroupPlacement).toBe("failed");
    expect(result.process.cgroupError).toBe("errno 2");
    await Promise.all([result.process.exit, result.process.output]);
    expect(stdout.text()).toBe("outside\n");
  });

  it("gives a local runner's task its group with no gate: the leader is the command, in its group", async () => {
    const prefix = `nt${process.pid}r.`;
    const warnings: string[] = [];
    const runner = createLocalRunner({ containment: createContainment({ cgroups: v2, groupPrefix: prefix, onWarning: (message) => warnings.push(message) }) });
    try {
      const stdout = new PassThrough();
      let text = "";
      stdout.on("data", (chunk: Buffer) => (text += chunk.toString()));
      let leader = 0;
      const handle = await runner.start({
        spec: taskSpec({ id: "placed", argv: ["/bin/sh", "-c", "cat /proc/$$/cgroup; cat /proc/$$/cmdline | tr '\\0' ' '"] }),
        workDir: dir,
        stdout,
        stderr: new PassThrough(),
        onSpawn: async (info) => {
          leader = info.pid;
        },
      });
      expect(await handle.done).toMatchObject({ kind: "exited", exitStatus: 0, escapedPids: [] });
      expect(leader).toBeGreaterThan(0);
      expect(text.split("\n")).toContain(v2Line(`${prefix}placed`));
      // No gate's shell in front of the command.
      expect(text).toContain("/bin/sh -c cat /proc/$$/cgroup");
      expect(text).not.toContain("drce-gate");
      expect(warnings).toEqual([]);
      expect((await readdir(v2!.parent)).filter((entry) => entry.startsWith(prefix))).toEqual([]);
    } finally {
      await runner.close?.();
    }
  });
});

describe("the native spawner's binary", () => {
  it("refuses to run without a node: no socket path, or no control socket as fd 3", async () => {
    const built = await buildNativeSpawner();
    if (!built.ok) throw new Error(built.reason);
    const runAlone = (args: string[]): Promise<{ code: number | null; stderr: string }> =>
      new Promise((resolve) => {
        const child = spawn(built.path, args, { stdio: ["ignore", "ignore", "pipe"] });
        let stderr = "";
        child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        child.once("close", (code) => resolve({ code, stderr }));
      });
    for (const args of [[], [join(dir, "alone.sock")]]) {
      const result = await runAlone(args);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/started by a node only/);
    }
  });

  it("is rebuilt for a changed source: its name is its source's hash", async () => {
    const source = await readFile(fileURLToPath(new URL("../../src/executor/native/spawner.c", import.meta.url)));
    const hash = createHash("sha256").update(source).update("-O2 -std=gnu11 -Wall").digest("hex").slice(0, 16);
    const built = await buildNativeSpawner({ cacheDir: join(dir, "cache-hash") });
    expect(built).toEqual({ ok: true, path: join(dir, "cache-hash", `spawner-${hash}`) });
  });
});
