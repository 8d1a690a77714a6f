import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/domain/errors.js";
import { taskSpec } from "../../src/domain/task.js";
import { createLocalRunner } from "../../src/executor/local-runner.js";
import { createSpawner, type SpawnedProcess, type Spawner } from "../../src/executor/spawner.js";
import { headerTimeoutMs } from "../../src/executor/spawner-protocol.js";
import { liveGroupMembers } from "../helpers/proc.js";
import { isDead, procStat } from "./proc-helpers.js";

/*
 * The spawner: the small process that starts a node's local commands, so the node itself
 * never forks. Real processes throughout: the spawner is forked from this test process.
 */

const env = { PATH: "/usr/bin:/bin" };
let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "drce-spawner-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const spawners: Spawner[] = [];
afterEach(async () => {
  await Promise.all(spawners.splice(0).map((spawner) => spawner.close()));
});
const newSpawner = (): Spawner => {
  const spawner = createSpawner();
  spawners.push(spawner);
  return spawner;
};

/** A sink that keeps a copy of what it is given (the spawner reuses its read buffer). */
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

interface Started extends SpawnedProcess {
  /** Everything the command wrote to stdout and stderr, once its output ended. */
  outputs(): Promise<[string, string]>;
}

async function started(spawner: Spawner, file: string, args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<Started> {
  const [stdout, stderr] = [collector(), collector()];
  const result = await spawner.spawn({ file, args, cwd: options.cwd ?? dir, env: options.env ?? env, stdout, stderr });
  if (!result.ok) throw new Error(`spawn failed: ${result.code} ${result.message}`);
  return Object.assign(result.process, { outputs: async (): Promise<[string, string]> => (await result.process.output, [stdout.text(), stderr.text()]) });
}

const sinks = (): { stdout: Writable; stderr: Writable } => ({ stdout: collector(), stderr: collector() });

describe("the spawner", () => {
  it("starts a command with its stdin, stdout and stderr, in its own process group, in its directory", async () => {
    const spawner = newSpawner();
    const child = await started(spawner, "/bin/sh", ["-c", 'read line; echo "out:$line:$(pwd)"; echo "err:$PATH" >&2; exit 7']);
    const stat = await procStat(child.pid);
    // detached: the leader of its own process group (and session), a child of the spawner.
    expect(stat?.pgrp).toBe(child.pid);
    expect(stat?.ppid).toBe(spawner.pid);
    expect(spawner.pid).not.toBe(process.pid);
    child.stdin.end("hello\n");
    const [[out, err], exit] = await Promise.all([child.outputs(), child.exit]);
    expect(out).toBe(`out:hello:${dir}\n`);
    expect(err).toBe("err:/usr/bin:/bin\n");
    expect(exit).toEqual({ code: 7, signal: null });
  });

  it("reports the signal that ended a command", async () => {
    const spawner = newSpawner();
    const child = await started(spawner, "/bin/sleep", ["300"]);
    process.kill(child.pid, "SIGTERM");
    expect(await child.exit).toEqual({ code: null, signal: "SIGTERM" });
  });

  it("passes only the environment it is given", async () => {
    const spawner = newSpawner();
    const child = await started(spawner, "/usr/bin/env", [], { env: { ONLY: "this" } });
    child.stdin.end();
    expect((await child.outputs())[0]).toBe("ONLY=this\n");
  });

  it("says why a command cannot start: missing, not executable, bad argument", async () => {
    const spawner = newSpawner();
    const missing = await spawner.spawn({ file: join(dir, "no-such-program"), args: [], cwd: dir, env, ...sinks() });
    expect(missing).toMatchObject({ ok: false, code: "ENOENT" });
    const script = join(dir, "not-executable");
    await writeFile(script, "#!/bin/sh\necho hi\n");
    await chmod(script, 0o644);
    const denied = await spawner.spawn({ file: script, args: [], cwd: dir, env, ...sinks() });
    expect(denied).toMatchObject({ ok: false, code: "EACCES" });
    const nul = await spawner.spawn({ file: "/bin/echo", args: ["a\0b"], cwd: dir, env, ...sinks() });
    expect(nul).toMatchObject({ ok: false, code: "ERR_INVALID_ARG_VALUE" });
    // The spawner is still there for the next command.
    const child = await started(spawner, "/bin/true", []);
    expect(await child.exit).toEqual({ code: 0, signal: null });
  });

  it("runs many commands at once, each with its own streams", async () => {
    const spawner = newSpawner();
    const outputs = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const child = await started(spawner, "/bin/sh", ["-c", `cat; echo ${i}`]);
        child.stdin.end(`in${i} `);
        return (await child.outputs())[0];
      }),
    );
    expect(outputs).toEqual(Array.from({ length: 40 }, (_, i) => `in${i} ${i}\n`));
  });

  it("listens in a directory only its user can enter, and removes it when it stops", async () => {
    const spawner = createSpawner();
    await (await started(spawner, "/bin/true", [])).exit;
    const path = spawner.socketPath!;
    const dirStat = await stat(dirname(path));
    expect(dirStat.mode & 0o777).toBe(0o700);
    expect(dirStat.uid).toBe(process.getuid!());
    expect((await stat(path)).isSocket()).toBe(true);
    await spawner.close();
    await expect(stat(dirname(path))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("drops a connection that does not open with a spawn's header, or sends none", async () => {
    const spawner = newSpawner();
    await (await started(spawner, "/bin/true", [])).exit;
    const closed = (socket: Socket): Promise<void> => new Promise((resolve) => socket.once("close", () => resolve()));
    const garbage = connect(spawner.socketPath!);
    garbage.on("error", () => undefined);
    garbage.end("this is not a header");
    garbage.resume();
    await closed(garbage);
    // One that stays silent is dropped after headerTimeoutMs.
    const silent = connect(spawner.socketPath!);
    silent.on("error", () => undefined);
    silent.resume();
    const started_ = Date.now();
    await closed(silent);
    expect(Date.now() - started_).toBeGreaterThanOrEqual(headerTimeoutMs - 100);
    // And the spawner goes on.
    expect(await (await started(spawner, "/bin/true", [])).exit).toEqual({ code: 0, signal: null });
  }, 20_000);

  it("fails a spawn at once when its streams cannot connect", async () => {
    const spawner = newSpawner();
    await (await started(spawner, "/bin/true", [])).exit;
    // The socket gone from its directory: every connect fails (ENOENT).
    await rm(spawner.socketPath!);
    const result = await spawner.spawn({ file: "/bin/true", args: [], cwd: dir, env, ...sinks() });
    expect(result).toMatchObject({ ok: false, code: "ENOENT" });
    if (!result.ok) expect(result.message).toMatch(/cannot connect the command's streams/);
  });

  it("starts a burst of 1,000 commands, queueing what its listen backlog could not hold", async () => {
    const spawner = newSpawner();
    const exits = await Promise.all(
      Array.from({ length: 1000 }, async () => {
        const child = await started(spawner, "/bin/true", []);
        return (await child.exit).code;
      }),
    );
    expect(exits.filter((code) => code !== 0)).toEqual([]);
  }, 60_000);

  it("is started again after it died; the commands it had could not report their exit", async () => {
    const spawner = newSpawner();
    const child = await started(spawner, "/bin/sleep", ["300"]);
    const first = spawner.pid!;
    process.kill(first, "SIGKILL");
    await expect(child.exit).rejects.toThrow(/spawner stopped/);
    // The orphan still runs (a runner kills it: see below); this test cleans it up.
    expect(await isDead(child.pid)).toBe(false);
    process.kill(child.pid, "SIGKILL");
    const next = await started(spawner, "/bin/sh", ["-c", "echo again"]);
    expect(spawner.pid).not.toBe(first);
    expect((await next.outputs())[0]).toBe("again\n");
  });

  it("stops on close, leaving running commands running", async () => {
    const spawner = createSpawner();
    const child = await started(spawner, "/bin/sleep", ["300"]);
    const pid = spawner.pid!;
    await spawner.close();
    await expect.poll(() => isDead(pid), { timeout: 5000 }).toBe(true);
    expect(await isDead(child.pid)).toBe(false);
    process.kill(child.pid, "SIGKILL");
  });
});

/** Runs test/fixtures/spawner-parent.mts and resolves to the pids its first line names. */
function spawnerParent(mode: "running" | "early" | "owned"): Promise<{ parent: ChildProcess; pids: number[] }> {
  const parent = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("../fixtures/spawner-parent.mts", import.meta.url)), mode], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let text = "";
    parent.stdout!.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes("\n")) resolve({ parent, pids: text.trim().split(" ").map(Number) });
    });
    parent.once("exit", (code) => {
      if (!text.includes("\n")) reject(new Error(`spawner-parent ${mode} exited with ${code} before printing`));
    });
  });
}

describe("a spawner whose node is gone", () => {
  it("exits when its node is killed, leaving the command it started running", async () => {
    const { parent, pids } = await spawnerParent("running");
    const [spawnerPid, commandPid] = pids as [number, number];
    expect(await isDead(spawnerPid)).toBe(false);
    parent.kill("SIGKILL");
    await expect.poll(() => isDead(spawnerPid), { timeout: 10_000 }).toBe(true);
    // The command is the node's business (its restart kills it, see recovery); here, ours.
    expect(await isDead(commandPid)).toBe(false);
    process.kill(commandPid, "SIGKILL");
  });

  it("exits when its node went away while it was still starting", async () => {
    const { pids } = await spawnerParent("early");
    const [spawnerPid] = pids as [number];
    expect(spawnerPid).toBeGreaterThan(0);
    await expect.poll(() => isDead(spawnerPid), { timeout: 10_000 }).toBe(true);
  });
});

describe("a spawner created with killOnDisconnect", () => {
  it("kills the whole group of every command not released when its node is killed, and leaves a released one", async () => {
    const { parent, pids } = await spawnerParent("owned");
    const [spawnerPid, owned, released] = pids as [number, number, number];
    try {
      // Each shell and its two sleeps: three live processes per group.
      await expect.poll(() => liveGroupMembers(owned).length, { timeout: 5000 }).toBe(3);
      await expect.poll(() => liveGroupMembers(released).length, { timeout: 5000 }).toBe(3);
      parent.kill("SIGKILL");
      await expect.poll(() => isDead(spawnerPid), { timeout: 10_000 }).toBe(true);
      await expect.poll(() => liveGroupMembers(owned), { timeout: 5000 }).toEqual([]);
      // The released command is its owner's to kill (a node's recovery): here, ours.
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

  it("kills the group of a command still running when it is closed, even after its leader exited", async () => {
    const spawner = createSpawner({ killOnDisconnect: true });
    // The leader exits at once; its background child stays in the group.
    const child = await started(spawner, "/bin/sh", ["-c", "sleep 300 >/dev/null 2>&1 & echo started"]);
    const [out] = await child.outputs();
    expect(out).toBe("started\n");
    await child.exit;
    await expect.poll(() => liveGroupMembers(child.pid).length, { timeout: 5000 }).toBe(1);
    await spawner.close();
    await expect.poll(() => liveGroupMembers(child.pid), { timeout: 5000 }).toEqual([]);
  });
});

describe("a local runner whose spawner dies while a command runs", () => {
  it("kills the command and fails the task with error 101, and the next task runs", async () => {
    const spawner = newSpawner();
    const runner = createLocalRunner({ spawner });
    let leader = 0;
    const handle = await runner.start({
      spec: taskSpec({ id: "orphaned", command: "sleep 300" }),
      workDir: dir,
      stdout: collector(),
      stderr: collector(),
      onSpawn: async (info) => {
        leader = info.pid;
      },
    });
    process.kill(spawner.pid!, "SIGKILL");
    const outcome = await handle.done;
    expect(outcome).toMatchObject({ kind: "failed", errorCode: ErrorCode.CommandExecution });
    expect(outcome.kind === "failed" ? outcome.message : "").toMatch(/spawner stopped/);
    await expect.poll(() => isDead(leader), { timeout: 5000 }).toBe(true);

    const stdout = collector();
    const next = await runner.start({ spec: taskSpec({ id: "next", command: "echo fine" }), workDir: dir, stdout, stderr: collector(), onSpawn: async () => undefined });
    expect(await next.done).toMatchObject({ kind: "exited", exitStatus: 0 });
    expect(stdout.text()).toBe("fine\n");
  });
});
