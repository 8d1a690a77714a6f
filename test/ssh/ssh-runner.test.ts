import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DrceError } from "../../src/domain/errors.js";
import { taskSpec, type Session, type TaskSpec } from "../../src/domain/task.js";
import type { ExecHandle, ExecOutcome, SpawnInfo } from "../../src/executor/runner.js";
import { createSshRunner, type SshRunner } from "../../src/executor/ssh/ssh-runner.js";
import { generateKey, sshdUnavailableReason, startSshd, type TestSshd } from "../helpers/sshd.js";

const run = promisify(execFile);
const unavailable = sshdUnavailableReason();
const mustRun = process.env.CI === "true";

if (unavailable !== undefined) {
  if (mustRun) {
    describe("SSH runner prerequisites", () => {
      it("has an sshd to test against in CI", () => {
        throw new Error(`the SSH tests cannot run in CI: ${unavailable}`);
      });
    });
  } else {
    console.warn(`skipping the SSH runner tests: ${unavailable}`);
  }
}

/** Polls `check` until it holds or the deadline passes. */
async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A sink that keeps what was written. */
class Collector extends Writable {
  private chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(chunk);
    callback();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }
}

/**
 * Pids of the user's live processes named `name`. Zombies do not count: a killed process
 * stays one until its new parent reaps it, which a container's init may do seconds later.
 */
async function processesOf(user: string, name: string): Promise<number[]> {
  const { stdout } = await run("ps", ["-u", user, "-o", "pid=,stat=,comm="]).catch(() => ({ stdout: "" }));
  return stdout
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter(([pid, stat, comm]) => pid !== undefined && stat !== undefined && !stat.startsWith("Z") && comm === name)
    .map(([pid]) => Number(pid));
}

describe.skipIf(unavailable !== undefined)("SSH runner against a real sshd", { timeout: 30_000 }, () => {
  let sshd: TestSshd;
  let runner: SshRunner;

  beforeAll(async () => {
    sshd = await startSshd();
    runner = createSshRunner({ knownHostsFile: sshd.knownHostsFile, trustOnFirstUse: false });
  }, 60_000);

  afterAll(async () => {
    await runner?.close();
    await sshd?.stop();
  });

  const passwordSession = (extra: Partial<Extract<Session, { type: "ssh" }>> = {}): Session => ({
    type: "ssh",
    host: "",
    port: sshd.port,
    user: sshd.users.password.user,
    password: sshd.users.password.password,
    privateKey: "",
    passphrase: "",
    hostFingerprint: "",
    ...extra,
  });

  const keySession = (): Session => ({
    type: "ssh",
    host: "127.0.0.1",
    port: sshd.port,
    user: sshd.users.key.user,
    password: "",
    privateKey: sshd.users.key.privateKey,
    passphrase: sshd.users.key.passphrase,
    hostFingerprint: "",
  });

  interface Started {
    readonly handle: ExecHandle;
    readonly stdout: Collector;
    readonly stderr: Collector;
    readonly spawns: SpawnInfo[];
  }

  async function start(fields: Partial<TaskSpec>, options: { runner?: SshRunner; workDir?: string } = {}): Promise<Started> {
    const stdout = new Collector();
    const stderr = new Collector();
    const spawns: SpawnInfo[] = [];
    const handle = await (options.runner ?? runner).start({
      spec: taskSpec({ session: passwordSession(), ...fields }),
      workDir: options.workDir ?? "",
      stdout,
      stderr,
      onSpawn: async (info) => {
        spawns.push(info);
      },
    });
    return { handle, stdout, stderr, spawns };
  }

  async function runToEnd(fields: Partial<TaskSpec>, options: { runner?: SshRunner; workDir?: string } = {}): Promise<Started & { outcome: ExecOutcome }> {
    const started = await start(fields, options);
    return { ...started, outcome: await started.handle.done };
  }

  it("runs sort with a password login, feeding input and reading output", async () => {
    const { outcome, stdout, stderr, spawns } = await runToEnd({ command: "sort", input: Buffer.from("def\nabc\n123\n") });
    expect(outcome).toEqual({ kind: "exited", exitStatus: 0, signal: "", escapedPids: [] });
    expect(stdout.text()).toBe("123\nabc\ndef\n");
    expect(stderr.text()).toBe("");
    expect(spawns).toHaveLength(1);
    expect(spawns[0]?.pid).toBeGreaterThan(1);
    expect(spawns[0]?.pgid).toBe(spawns[0]?.pid);
    expect(spawns[0]?.procStartTicks).toBe(0);
  });

  it("logs in with a passphrase-protected private key", async () => {
    const { outcome, stdout } = await runToEnd({ command: "id -un", session: keySession() });
    expect(outcome.kind).toBe("exited");
    expect(stdout.text()).toBe(`${sshd.users.key.user}\n`);
  });

  it("exports the task's environment inside the remote command, quoting values", async () => {
    const value = `it's a "quoted" $HOME \`value\`\nwith a second line`;
    const { stdout } = await runToEnd({ command: 'printf "%s|%s" "$FOO" "$BAR"', env: { FOO: value, BAR: "" } });
    expect(stdout.text()).toBe(`${value}|`);
  });

  it("runs argv without a shell and uses the requested shell for a command line", async () => {
    const argv = await runToEnd({ argv: ["printf", "%s,", "a b", "$c", "'d'"] });
    expect(argv.stdout.text()).toBe("a b,$c,'d',");
    const bash = await runToEnd({ command: "echo ${BASH_VERSION:+bash}", shell: "/bin/bash -c" });
    expect(bash.stdout.text()).toBe("bash\n");
  });

  it("prepares a working directory under the remote home and runs there", async () => {
    const files = runner.filesFor(passwordSession());
    const workDir = await files.prepareWorkDir(".drce/tasks/wd-test");
    expect(workDir).toBe(`/home/${sshd.users.password.user}/.drce/tasks/wd-test`);
    // Preparing twice is fine.
    expect(await files.prepareWorkDir("~/.drce/tasks/wd-test")).toBe(workDir);
    const { stdout } = await runToEnd({ command: "pwd" }, { workDir });
    expect(stdout.text()).toBe(`${workDir}\n`);
  });

  it("reports the exit status", async () => {
    const { outcome } = await runToEnd({ command: "echo out; exit 3" });
    expect(outcome).toEqual({ kind: "exited", exitStatus: 3, signal: "", escapedPids: [] });
  });

  it("reports a signal as 128+N with the signal's name", async () => {
    const { outcome } = await runToEnd({ command: "kill -9 $$" });
    expect(outcome).toEqual({ kind: "exited", exitStatus: 137, signal: "SIGKILL", escapedPids: [] });
  });

  it("fails with 15 when the shell does not exist and 4 when the directory cannot be entered", async () => {
    const shell = await runToEnd({ command: "true", shell: "/nonexistent/shell -c" });
    expect(shell.outcome).toMatchObject({ kind: "failed", errorCode: 15 });
    expect(shell.spawns).toHaveLength(0);
    const dir = await runToEnd({ command: "true" }, { workDir: "/nonexistent/dir" });
    expect(dir.outcome).toMatchObject({ kind: "failed", errorCode: 4 });
  });

  it("streams output live, before the command ends", async () => {
    const { handle, stdout } = await start({ command: "echo a; sleep 2; echo b" });
    let done = false;
    void handle.done.then(() => (done = true));
    await waitFor(() => stdout.text() === "a\n", "the first line arrived", 5000);
    expect(done).toBe(false);
    const outcome = await handle.done;
    expect(outcome.kind).toBe("exited");
    expect(stdout.text()).toBe("a\nb\n");
  });

  it("waits for a slow sink without losing output, also after the command ended", async () => {
    const chunks: Buffer[] = [];
    const slow = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        // Slow enough that output is still flowing well after the command exited.
        setTimeout(callback, 5);
      },
    });
    let refused = 0;
    const write = slow.write.bind(slow) as (...args: unknown[]) => boolean;
    slow.write = ((...args: unknown[]) => {
      const ok = write(...args);
      if (!ok) refused += 1;
      return ok;
    }) as Writable["write"];
    const handle = await runner.start({
      spec: taskSpec({ command: "seq 1 300000", session: passwordSession() }),
      workDir: "",
      stdout: slow,
      stderr: new Collector(),
      onSpawn: async () => undefined,
    });
    expect((await handle.done).kind).toBe("exited");
    const expected = Array.from({ length: 300000 }, (_, i) => `${i + 1}\n`).join("");
    expect(Buffer.concat(chunks).toString()).toBe(expected);
    expect(refused).toBeGreaterThan(0);
  });

  it("keeps stdin open for streamed input when asked", async () => {
    const { handle, stdout } = await start({ command: "cat", input: Buffer.from("first\n"), openStdin: true });
    await waitFor(() => stdout.text() === "first\n", "the initial input came back");
    await handle.writeInput(Buffer.from("second\n"));
    handle.endInput();
    await handle.done;
    expect(stdout.text()).toBe("first\nsecond\n");
    await expect(handle.writeInput(Buffer.from("late"))).rejects.toBeInstanceOf(DrceError);
  });

  it("does not hang on a background process holding the output, and kills it", async () => {
    const user = sshd.users.password.user;
    const began = Date.now();
    const { outcome, stdout } = await runToEnd({ command: "sleep 120 & echo leader done" });
    expect(Date.now() - began).toBeLessThan(5000);
    expect(outcome).toMatchObject({ kind: "exited", exitStatus: 0 });
    expect(stdout.text()).toBe("leader done\n");
    await waitFor(async () => (await processesOf(user, "sleep")).length === 0, "the background sleep is gone");
  });

  it("stops reading output held by a process that left the group", async () => {
    const user = sshd.users.password.user;
    const began = Date.now();
    const { outcome, stdout } = await runToEnd({ command: "setsid sleep 60 & echo leader done" });
    expect(Date.now() - began).toBeLessThan(8000);
    expect(outcome).toMatchObject({ kind: "exited", exitStatus: 0 });
    expect(stdout.text()).toBe("leader done\n");
    // The escaped sleep is ours to clean up.
    for (const pid of await processesOf(user, "sleep")) process.kill(pid, "SIGKILL");
  });

  it("terminates with alg 1 (SIGTERM, then SIGKILL) and leaves no remote process", async () => {
    const user = sshd.users.password.user;
    // TERM is ignored, so only the SIGKILL of the second step ends the group.
    const { handle, spawns } = await start({ command: "trap '' TERM; sh -c 'sleep 300 & sleep 300'" });
    await waitFor(async () => (await processesOf(user, "sleep")).length === 2, "both sleeps run");
    expect(spawns).toHaveLength(1);
    await handle.terminate({ alg: 1, delayMs: 300, repeat: 2, signal: 0, cleanup: false });
    const outcome = await handle.done;
    expect(outcome).toMatchObject({ kind: "exited", exitStatus: 137, signal: "SIGKILL" });
    await waitFor(async () => (await processesOf(user, "sleep")).length === 0, "no sleep is left");
  });

  it("terminates with alg 2 and the requested signal, leaving no remote process", async () => {
    const user = sshd.users.password.user;
    const { handle } = await start({ command: "sh -c 'sleep 300 & sleep 300'" });
    await waitFor(async () => (await processesOf(user, "sleep")).length === 2, "both sleeps run");
    await handle.terminate({ alg: 2, delayMs: 500, repeat: 3, signal: 15, cleanup: false });
    const outcome = await handle.done;
    expect(outcome).toMatchObject({ kind: "exited", exitStatus: 143, signal: "SIGTERM" });
    await waitFor(async () => (await processesOf(user, "sleep")).length === 0, "no sleep is left");
  });

  describe("host keys", () => {
    const refusal = async (promise: Promise<unknown>): Promise<DrceError> => {
      const error = await promise.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(DrceError);
      return error as DrceError;
    };

    it("computes the fingerprint ssh-keygen prints", async () => {
      const known = join(sshd.dir, "kh-fingerprint");
      await writeFile(known, "");
      const other = createSshRunner({ knownHostsFile: known, trustOnFirstUse: false });
      try {
        const error = await refusal(start({ command: "true" }, { runner: other }));
        expect(error.message).toContain(sshd.hostKeyFingerprint);
      } finally {
        await other.close();
      }
    });

    it("refuses an unknown host key", async () => {
      const known = join(sshd.dir, "kh-empty");
      await writeFile(known, "");
      const other = createSshRunner({ knownHostsFile: known, trustOnFirstUse: false });
      try {
        const error = await refusal(start({ command: "true" }, { runner: other }));
        expect(error.kind).toBe("invalid");
        expect(error.legacyCode).toBe(103);
        expect(error.message).toBe(`host key of 127.0.0.1:${sshd.port} is not known (${sshd.hostKeyFingerprint})`);
        expect(await readFile(known, "utf8")).toBe("");
      } finally {
        await other.close();
      }
    });

    it("refuses a changed host key, even when trusting on first use", async () => {
      const key = await generateKey(sshd.dir, "other-host-key");
      const [type, blob] = (await readFile(key.publicKeyFile, "utf8")).trim().split(/\s+/);
      const known = join(sshd.dir, "kh-changed");
      const text = `# a comment\n[127.0.0.1]:${sshd.port} ${type} ${blob}\n`;
      await writeFile(known, text);
      const other = createSshRunner({ knownHostsFile: known, trustOnFirstUse: true });
      try {
        const error = await refusal(start({ command: "true" }, { runner: other }));
        expect(error.legacyCode).toBe(103);
        expect(error.message).toMatch(new RegExp(`^host key of 127\\.0\\.0\\.1:${sshd.port} changed`));
        expect(await readFile(known, "utf8")).toBe(text);
      } finally {
        await other.close();
      }
    });

    it("accepts a pinned fingerprint without known_hosts, and refuses a wrong pin", async () => {
      const known = join(sshd.dir, "kh-pinned");
      await writeFile(known, "");
      const other = createSshRunner({ knownHostsFile: known, trustOnFirstUse: false });
      try {
        const ok = await runToEnd({ command: "echo pinned", session: passwordSession({ hostFingerprint: sshd.hostKeyFingerprint }) }, { runner: other });
        expect(ok.stdout.text()).toBe("pinned\n");
        const error = await refusal(
          start({ command: "true", session: passwordSession({ hostFingerprint: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }) }, { runner: other }),
        );
        expect(error.message).toContain("does not match the pinned fingerprint");
      } finally {
        await other.close();
      }
    });

    it("records the key on first use, then knows it", async () => {
      const known = join(sshd.dir, "kh-tofu");
      const tofu = createSshRunner({ knownHostsFile: known, trustOnFirstUse: true });
      try {
        const first = await runToEnd({ command: "echo first" }, { runner: tofu });
        expect(first.stdout.text()).toBe("first\n");
      } finally {
        await tofu.close();
      }
      const text = await readFile(known, "utf8");
      expect(text).toMatch(new RegExp(`^\\[127\\.0\\.0\\.1\\]:${sshd.port} ssh-ed25519 [A-Za-z0-9+/=]+\\n$`));
      const strict = createSshRunner({ knownHostsFile: known, trustOnFirstUse: false });
      try {
        expect((await runToEnd({ command: "echo again" }, { runner: strict })).stdout.text()).toBe("again\n");
      } finally {
        await strict.close();
      }
    });

    it("asks for the key type known_hosts holds, so a host known by its RSA key is accepted", async () => {
      const known = join(sshd.dir, "kh-rsa");
      await writeFile(known, `[127.0.0.1]:${sshd.port} ${sshd.rsaHostKey}\n`);
      const other = createSshRunner({ knownHostsFile: known, trustOnFirstUse: true });
      try {
        expect((await runToEnd({ command: "echo rsa" }, { runner: other })).stdout.text()).toBe("rsa\n");
        // Nothing was added: the RSA key was known.
        expect(await readFile(known, "utf8")).toBe(`[127.0.0.1]:${sshd.port} ${sshd.rsaHostKey}\n`);
      } finally {
        await other.close();
      }
    });

    it("accepts a hashed known_hosts entry made by ssh-keygen -H", async () => {
      const known = join(sshd.dir, "kh-hashed");
      await writeFile(known, await readFile(sshd.knownHostsFile));
      await run("ssh-keygen", ["-H", "-f", known]);
      expect(await readFile(known, "utf8")).toMatch(/^\|1\|/);
      const other = createSshRunner({ knownHostsFile: known, trustOnFirstUse: false });
      try {
        expect((await runToEnd({ command: "echo hashed" }, { runner: other })).stdout.text()).toBe("hashed\n");
      } finally {
        await other.close();
      }
    });
  });

  describe("files over SFTP", () => {
    it("writes, reads and removes files in the working directory", async () => {
      const files = runner.filesFor(passwordSession());
      const workDir = await files.prepareWorkDir(".drce/tasks/files-test");
      await files.write(workDir, "sub/dir/data.txt", Buffer.from("hello\n"));
      const { stdout } = await runToEnd({ command: "cat sub/dir/data.txt; echo more >> sub/dir/data.txt" }, { workDir });
      expect(stdout.text()).toBe("hello\n");
      expect(Buffer.from(await files.read(workDir, "sub/dir/data.txt", 1024)).toString()).toBe("hello\nmore\n");
      await expect(files.read(workDir, "sub/dir/data.txt", 4)).rejects.toMatchObject({ legacyCode: 203 });
      await files.write(workDir, "sub/dir/data.txt", Buffer.from("x"));
      expect(Buffer.from(await files.read(workDir, "sub/dir/data.txt", 1024)).toString()).toBe("x");
      await files.remove(workDir, "sub/dir/data.txt");
      await files.remove(workDir, "sub/dir/data.txt");
      await files.remove(workDir, "missing/dir/file");
      await expect(files.read(workDir, "sub/dir/data.txt", 1024)).rejects.toMatchObject({ legacyCode: 203 });
    });

    it("refuses names that escape the working directory through a symlink", async () => {
      const files = runner.filesFor(passwordSession());
      const workDir = await files.prepareWorkDir(".drce/tasks/escape-test");
      await runToEnd({ command: "ln -sfn /tmp out; ln -sfn /etc/hostname host; ln -sfn inside.txt ok; echo in > inside.txt" }, { workDir });
      await expect(files.write(workDir, "out/planted", Buffer.from("x"))).rejects.toMatchObject({ kind: "invalid", legacyCode: 201 });
      await expect(files.write(workDir, "host", Buffer.from("x"))).rejects.toMatchObject({ kind: "invalid", legacyCode: 201 });
      await expect(files.read(workDir, "host", 1024)).rejects.toMatchObject({ kind: "invalid", legacyCode: 203 });
      await expect(files.remove(workDir, "out/anything")).rejects.toMatchObject({ kind: "invalid", legacyCode: 202 });
      await expect(files.write(workDir, "../x", Buffer.from("x"))).rejects.toMatchObject({ legacyCode: 201 });
      // A link that stays inside is fine, and removing a link removes the link only.
      expect(Buffer.from(await files.read(workDir, "ok", 1024)).toString()).toBe("in\n");
      await files.remove(workDir, "host");
      expect((await runToEnd({ command: "test -e host || echo gone; test -e /etc/hostname && echo kept" }, { workDir })).stdout.text()).toBe(
        "gone\nkept\n",
      );
    });

    it("needs a session for file operations", async () => {
      await expect(runner.files.read("/tmp", "x", 1)).rejects.toBeInstanceOf(DrceError);
      await expect(runner.filesFor(passwordSession()).prepareWorkDir("")).rejects.toMatchObject({ kind: "invalid" });
    });
  });

  describe("connection pool", () => {
    it("reuses one connection for sequential tasks", async () => {
      const pooled = createSshRunner({ knownHostsFile: sshd.knownHostsFile, trustOnFirstUse: false });
      try {
        await runToEnd({ command: "true" }, { runner: pooled });
        await runToEnd({ command: "true" }, { runner: pooled });
        await pooled.filesFor(passwordSession()).prepareWorkDir(".drce/tasks/pool-test");
        expect(pooled.stats().connectionsOpened).toBe(1);
      } finally {
        await pooled.close();
      }
    });

    it("replaces a connection the server dropped, transparently", async () => {
      const pooled = createSshRunner({ knownHostsFile: sshd.knownHostsFile, trustOnFirstUse: false });
      try {
        await runToEnd({ command: "true" }, { runner: pooled });
        expect(pooled.stats().connectionsOpen).toBe(1);
        await sshd.killConnections();
        const { outcome, stdout } = await runToEnd({ command: "echo after" }, { runner: pooled });
        expect(outcome.kind).toBe("exited");
        expect(stdout.text()).toBe("after\n");
        expect(pooled.stats().connectionsOpened).toBe(2);
      } finally {
        await pooled.close();
      }
    });

    it("opens another connection beyond the channels one connection takes", async () => {
      const pooled = createSshRunner({ knownHostsFile: sshd.knownHostsFile, trustOnFirstUse: false, maxChannelsPerConnection: 4 });
      try {
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => runToEnd({ command: `echo ${i}` }, { runner: pooled })));
        results.forEach((result, i) => expect(result.stdout.text()).toBe(`${i}\n`));
        expect(pooled.stats().connectionsOpened).toBeGreaterThanOrEqual(2);
      } finally {
        await pooled.close();
      }
    });

    it("sees the exit status of short commands started together", async () => {
      // The exit status of `true` can arrive in the same read as the channel's confirmation.
      const outcomes = await Promise.all(Array.from({ length: 32 }, () => runToEnd({ command: "true" }).then((r) => r.outcome)));
      for (const outcome of outcomes) expect(outcome).toEqual({ kind: "exited", exitStatus: 0, signal: "", escapedPids: [] });
    });

    it("moves to another connection when the server refuses more sessions (MaxSessions 32)", async () => {
      const greedy = createSshRunner({ knownHostsFile: sshd.knownHostsFile, trustOnFirstUse: false, maxChannelsPerConnection: 100 });
      try {
        const results = await Promise.all(Array.from({ length: 40 }, (_, i) => runToEnd({ command: `sleep 0.5; echo ${i}` }, { runner: greedy })));
        results.forEach((result, i) => expect(result.stdout.text()).toBe(`${i}\n`));
        expect(greedy.stats().connectionsOpened).toBeGreaterThanOrEqual(2);
      } finally {
        await greedy.close();
      }
    });

    it("closes idle connections", async () => {
      const pooled = createSshRunner({ knownHostsFile: sshd.knownHostsFile, trustOnFirstUse: false, poolIdleMs: 100 });
      try {
        await runToEnd({ command: "true" }, { runner: pooled });
        await waitFor(() => pooled.stats().connectionsOpen === 0, "the idle connection closed");
        await runToEnd({ command: "true" }, { runner: pooled });
        expect(pooled.stats().connectionsOpened).toBe(2);
      } finally {
        await pooled.close();
      }
    });
  });

  describe("secrets", () => {
    it("never puts a password, key or passphrase in an error", async () => {
      const secrets: string[] = [];
      const texts: string[] = [];
      const collect = async (session: Session): Promise<void> => {
        const error = await start({ command: "true", session }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(DrceError);
        let e: unknown = error;
        while (e instanceof Error) {
          texts.push(`${e.name} ${e.message} ${e.stack ?? ""}`);
          e = e.cause;
        }
      };
      const wrongPassword = "wrong-password-Secret-123";
      secrets.push(wrongPassword);
      await collect(passwordSession({ password: wrongPassword }));
      const wrongPassphrase = "wrong-passphrase-Secret-456";
      secrets.push(wrongPassphrase, sshd.users.key.privateKey.split("\n")[2] ?? "");
      const key = keySession();
      await collect({ ...key, passphrase: wrongPassphrase } as Session);
      const bogusKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nbogus-Secret-789\n-----END OPENSSH PRIVATE KEY-----\n";
      secrets.push("bogus-Secret-789");
      await collect({ ...key, privateKey: bogusKey, passphrase: "" } as Session);
      expect(texts.join("\n")).toMatch(/authentication|private key/);
      for (const text of texts) for (const secret of secrets) expect(text).not.toContain(secret);
    });

    it("refuses a wrong password as invalid credentials", async () => {
      const error = await start({ command: "true", session: passwordSession({ password: "nope-nope" }) }).catch((e: unknown) => e);
      expect(error).toMatchObject({ kind: "invalid", message: `authentication as ${sshd.users.password.user}@127.0.0.1:${sshd.port} failed` });
    });

    it("reports a refused connection as unavailable", async () => {
      const error = await start({ command: "true", session: passwordSession({ port: 1 }) }).catch((e: unknown) => e);
      expect(error).toMatchObject({ kind: "unavailable" });
      expect((error as Error).message).toContain("ECONNREFUSED");
    });
  });
});
