import { spawn } from "node:child_process";
import { mkdtemp, mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createGroupUsageSampler,
  isSameProcess,
  listGroupPids,
  parseProcStat,
  readAllProcStats,
  readProcStartTicks,
  sampleProcess,
} from "../../src/executor/process-usage.js";
import { directoryBytes } from "../../src/executor/directory-bytes.js";
import { isDead, killSpawned, procStat, spawnGroup, waitForOutput } from "./proc-helpers.js";

afterEach(() => killSpawned());

const statTail = (fields: Record<number, number | string>): string => {
  // Fields 3..52; the defaults are zero, the state is S.
  const values: string[] = [];
  for (let n = 3; n <= 52; n++) values.push(String(fields[n] ?? (n === 3 ? "S" : 0)));
  return values.join(" ");
};

describe("parseProcStat", () => {
  it("reads the fields after the last ')' even when the command name holds spaces and parentheses", () => {
    const line = `4242 (my (odd) name) ) R ${statTail({ 4: 1, 5: 4240, 6: 4200, 14: 7, 15: 3, 20: 5, 22: 98765, 23: 123456789, 24: 321 }).slice(2)}\n`;
    const stat = parseProcStat(line);
    expect(stat).toEqual({
      pid: 4242,
      comm: "my (odd) name) ",
      state: "R",
      ppid: 1,
      pgrp: 4240,
      session: 4200,
      utime: 7,
      stime: 3,
      threads: 5,
      startTicks: 98765,
      vsize: 123456789,
      rssPages: 321,
    });
  });

  it("refuses empty and truncated text", () => {
    expect(parseProcStat("")).toBeUndefined();
    expect(parseProcStat("12 (sh) S 1 12")).toBeUndefined();
    expect(parseProcStat("x (sh) " + statTail({}))).toBeUndefined();
  });

  it("parses every stat line of the real /proc, this process included", async () => {
    const stats = await readAllProcStats();
    expect(stats.length).toBeGreaterThan(0);
    const self = stats.find((s) => s.pid === process.pid);
    expect(self?.comm.length).toBeGreaterThan(0);
    expect(self?.threads).toBeGreaterThanOrEqual(1);
    expect(self?.rssPages).toBeGreaterThan(0);
  });
});

describe("listGroupPids", () => {
  it("lists the leader and children of a group but not a child that called setsid", async () => {
    const leader = await spawnGroup("sh", ["-c", "sleep 300 & setsid sleep 300 & sleep 300 & wait"]);
    // setsid runs in the child after the fork: wait until the escapee has left the group too.
    await expect
      .poll(async () => {
        const kids = (await readAllProcStats()).filter((s) => s.ppid === leader.pid);
        return `${kids.length}/${kids.filter((s) => s.pgrp !== leader.pid).length}`;
      }, { timeout: 5000 })
      .toBe("3/1");
    const children = (await readAllProcStats()).filter((s) => s.ppid === leader.pid);
    const escaped = children.filter((s) => s.pgrp !== leader.pid).map((s) => s.pid);
    expect(escaped).toHaveLength(1);
    const pids = await listGroupPids(leader.pid);
    expect(pids).toEqual([leader.pid, ...children.filter((s) => s.pgrp === leader.pid).map((s) => s.pid)].sort((a, b) => a - b));
    expect(pids).not.toContain(escaped[0]);
    process.kill(escaped[0]!, "SIGKILL");
  });

  it("gives nothing for a group that does not exist", async () => {
    expect(await listGroupPids(2 ** 22 + 12345)).toEqual([]);
  });
});

describe("sampleProcess", () => {
  it("gives a live process's start time and non-zero memory and threads, and nothing once it is gone", async () => {
    const child = await spawnGroup("sleep", ["300"]);
    const sample = await sampleProcess(child.pid);
    expect(sample?.startTicks).toBe((await procStat(child.pid))?.startTicks);
    expect(sample?.usage.rramBytes).toBeGreaterThan(0);
    expect(sample?.usage.vramBytes).toBeGreaterThan(0);
    expect(sample?.usage.threads).toBe(1);
    expect(sample?.usage.processes).toBe(1);
    expect(sample?.usage.cpuPercent).toBeGreaterThanOrEqual(0);

    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    await expect.poll(() => sampleProcess(child.pid), { timeout: 5000 }).toBeUndefined();
    expect(await sampleProcess(0)).toBeUndefined();
  });
});

describe("readProcStartTicks and isSameProcess", () => {
  it("identify a live process and stop matching once it is gone", async () => {
    const child = await spawnGroup("sleep", ["300"]);
    const ticks = await readProcStartTicks(child.pid);
    expect(ticks).toBeGreaterThan(0);
    expect(ticks).toBe((await procStat(child.pid))?.startTicks);
    expect(await isSameProcess(child.pid, ticks)).toBe(true);
    expect(await isSameProcess(child.pid, ticks + 1)).toBe(false);
    expect(await isSameProcess(child.pid, 0)).toBe(false);

    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    await expect.poll(() => readProcStartTicks(child.pid), { timeout: 5000 }).toBe(0);
    expect(await isSameProcess(child.pid, ticks)).toBe(false);
  });

  it("give 0 and false for impossible pids", async () => {
    expect(await readProcStartTicks(0)).toBe(0);
    expect(await readProcStartTicks(-1)).toBe(0);
    expect(await isSameProcess(2 ** 22 + 999, 1)).toBe(false);
  });
});

describe("createGroupUsageSampler", () => {
  it("sums resident and virtual memory and threads over the group", async () => {
    const allocated = 64 * 1024 * 1024;
    const child = await spawnGroup(
      process.execPath,
      ["-e", `globalThis.keep = Buffer.alloc(${allocated}, 1); process.stdout.write("ready\\n"); setInterval(() => {}, 1000);`],
      "pipe-stdout",
    );
    await waitForOutput(child, "ready");
    const usage = await createGroupUsageSampler(child.pid).sample();
    expect(usage.processes).toBe(1);
    expect(usage.rramBytes).toBeGreaterThan(allocated);
    expect(usage.vramBytes).toBeGreaterThan(usage.rramBytes);
    // node runs a main thread plus its libuv and V8 worker threads.
    expect(usage.threads).toBeGreaterThan(1);
  });

  it("counts every process of a shell's group", async () => {
    const leader = await spawnGroup("sh", ["-c", "sleep 300 & sleep 300 & wait"]);
    const sampler = createGroupUsageSampler(leader.pid);
    await expect.poll(async () => (await sampler.sample()).processes, { timeout: 5000 }).toBe(3);
    const usage = await sampler.sample();
    expect(usage.threads).toBe(3);
    expect(usage.rramBytes).toBeGreaterThan(0);
  });

  it("measures a busy process as using CPU and a sleeping one as not", async () => {
    const busy = await spawnGroup(process.execPath, ["-e", "for (;;) {}"]);
    const idle = await spawnGroup("sleep", ["300"]);
    const busySampler = createGroupUsageSampler(busy.pid);
    const idleSampler = createGroupUsageSampler(idle.pid);
    // Poll: the first sample averages over the process's life, later ones over the interval.
    // The busy loop's share of a CPU depends on what else the host runs (a loaded 2-core
    // host has given it 14 %), so the bound is only that it is seen using CPU at all,
    // while the sleeping one is seen using none.
    await expect.poll(async () => (await busySampler.sample()).cpuPercent, { timeout: 20_000, interval: 200 }).toBeGreaterThan(2);
    await idleSampler.sample();
    await expect.poll(async () => (await idleSampler.sample()).cpuPercent, { timeout: 5000, interval: 100 }).toBe(0);
  });

  it("gives zeros for a group that is gone", async () => {
    const child = await spawnGroup("sleep", ["300"]);
    const sampler = createGroupUsageSampler(child.pid);
    expect((await sampler.sample()).processes).toBe(1);
    child.kill("SIGKILL");
    await expect.poll(() => isDead(child.pid), { timeout: 5000 }).toBe(true);
    await expect.poll(async () => (await sampler.sample()).rramBytes, { timeout: 5000 }).toBe(0);
  });
});

describe("directoryBytes", () => {
  let dir: string;
  let outside: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "drce-du-"));
    outside = await mkdtemp(join(tmpdir(), "drce-du-outside-"));
    await writeFile(join(dir, "a"), Buffer.alloc(1000));
    await mkdir(join(dir, "sub", "deeper"), { recursive: true });
    await writeFile(join(dir, "sub", "b"), Buffer.alloc(2500));
    await writeFile(join(dir, "sub", "deeper", "c"), Buffer.alloc(7));
    await writeFile(join(outside, "big"), Buffer.alloc(1_000_000));
    await symlink(join(outside, "big"), join(dir, "link-to-file"));
    await symlink(outside, join(dir, "link-to-dir"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  it("sums file sizes recursively without following symlinks", async () => {
    expect(await directoryBytes(dir)).toBe(1000 + 2500 + 7);
  });

  it("stops at its bounds and returns a lower bound", async () => {
    expect(await directoryBytes(dir, { maxDepth: 0 })).toBe(1000);
    expect(await directoryBytes(dir, { maxDepth: 1 })).toBe(3500);
    expect(await directoryBytes(dir, { maxEntries: 1 })).toBeLessThanOrEqual(3507);
  });

  it("gives 0 for a missing directory", async () => {
    expect(await directoryBytes(join(dir, "missing"))).toBe(0);
  });
});

describe("the real /proc under churn", () => {
  it("leaves out processes that exit during a scan", async () => {
    // Short-lived processes come and go while the scans run; no scan may fail or hold a bad entry.
    const churn = spawn("sh", ["-c", "for i in $(seq 1 200); do /bin/true; done"], { stdio: "ignore" });
    const done = new Promise((resolve) => churn.once("exit", resolve));
    let scans = 0;
    let finished = false;
    void done.then(() => (finished = true));
    while (!finished || scans === 0) {
      const stats = await readAllProcStats();
      expect(stats.every((s) => s.pid > 0 && Number.isFinite(s.threads))).toBe(true);
      scans++;
    }
    expect(scans).toBeGreaterThan(0);
  });
});
