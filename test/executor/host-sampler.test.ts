import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  balancingString,
  createHostSampler,
  emptyHostSnapshot,
  hostFields,
  resourceUsage,
  threadsOfLoadavg,
  type HostSampler,
  type HostSnapshot,
} from "../../src/executor/host-sampler.js";

const percentKeys = [
  "cpuPercent",
  "iowaitPercent",
  "rramUsedPercent",
  "vramUsedPercent",
  "rramFreePercent",
  "vramFreePercent",
  "diskUsedPercent",
  "diskFreePercent",
  "processesPercent",
  "threadsPercent",
] as const;

let sampler: HostSampler | undefined;
afterEach(() => {
  sampler?.stop();
  sampler = undefined;
});

describe("a real host snapshot", () => {
  it("has sane figures", async () => {
    sampler = createHostSampler({ diskPath: tmpdir() });
    const before = Date.now();
    const s = await sampler.refresh();
    for (const key of percentKeys) {
      expect(s[key], key).toBeGreaterThanOrEqual(0);
      expect(s[key], key).toBeLessThanOrEqual(100);
    }
    expect(s.rramUsedPercent + s.rramFreePercent).toBeCloseTo(100, 6);
    expect(s.vramUsedPercent + s.vramFreePercent).toBeCloseTo(100, 6);
    expect(s.diskUsedPercent + s.diskFreePercent).toBeCloseTo(100, 6);
    expect(s.iowaitPercent).toBeLessThanOrEqual(100 - s.cpuPercent + 1e-9);
    expect(s.memTotal).toBeGreaterThan(0);
    expect(s.memAvailable).toBeGreaterThan(0);
    expect(s.memAvailable).toBeLessThanOrEqual(s.memTotal);
    expect(s.swapFree).toBeLessThanOrEqual(s.swapTotal);
    expect(s.diskTotal).toBeGreaterThan(0);
    expect(s.diskFree).toBeLessThanOrEqual(s.diskTotal);
    expect(s.processes).toBeGreaterThan(0);
    expect(s.threads).toBeGreaterThanOrEqual(s.processes);
    expect(s.processesPercent).toBeGreaterThan(0);
    expect(s.cpuCount).toBeGreaterThanOrEqual(1);
    expect(s.loadAvg1).toBeGreaterThanOrEqual(0);
    expect(s.loadAvgPercent).toBeCloseTo((s.loadAvg1 / s.cpuCount) * 100, 6);
    expect(s.sampledAt).toBeGreaterThanOrEqual(before);
    expect(sampler.current()).toBe(s);

    const fields = hostFields(s);
    expect(Object.keys(fields).sort()).toEqual(
      ["HOST_CPU", "HOST_DISK", "HOST_IOWAIT", "HOST_PROCESSES", "HOST_RRAM", "HOST_THREADS", "HOST_VRAM"].sort(),
    );
    for (const value of Object.values(fields)) expect(value).toBeGreaterThanOrEqual(0);
    expect(balancingString(s).split(",")).toHaveLength(8);
  });

  it("measures CPU over the interval between samples", async () => {
    sampler = createHostSampler({ diskPath: tmpdir() });
    const first = await sampler.refresh();
    // Keep this thread busy until a later sample covers a fresh interval.
    await expect
      .poll(
        async () => {
          const end = Date.now() + 150;
          while (Date.now() < end) Math.sqrt(Math.random());
          return (await sampler!.refresh()).sampledAt;
        },
        { timeout: 5000 },
      )
      .toBeGreaterThan(first.sampledAt);
    expect(sampler.current().cpuPercent).toBeGreaterThan(0);
  });
});

describe("createHostSampler", () => {
  it("does no I/O in current(): before the first sample it gives the empty snapshot", () => {
    sampler = createHostSampler({ diskPath: tmpdir() });
    expect(sampler.current()).toBe(emptyHostSnapshot);
    expect(sampler.current().sampledAt).toBe(0);
  });

  it("samples on its interval once started, and not after stop()", async () => {
    sampler = createHostSampler({ diskPath: tmpdir(), intervalMs: 20 });
    sampler.start();
    sampler.start(); // a second start does nothing
    await expect.poll(() => sampler!.current().sampledAt, { timeout: 5000 }).toBeGreaterThan(0);
    const first = sampler.current();
    await expect.poll(() => sampler!.current() !== first, { timeout: 5000 }).toBe(true);
    sampler.stop();
    // A sample already under way may still land; after it, nothing changes.
    const settled = await sampler.refresh();
    const seen = new Set<HostSnapshot>();
    const until = Date.now() + 200;
    while (Date.now() < until) {
      seen.add(sampler.current());
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect([...seen]).toEqual([settled]);
  });

  it("does not keep the process alive: its timer is unref()ed", () => {
    const count = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const before = count();
    sampler = createHostSampler({ diskPath: tmpdir(), intervalMs: 60_000 });
    sampler.start();
    expect(count()).toBe(before);
  });

  it("joins a sample already under way", async () => {
    sampler = createHostSampler({ diskPath: tmpdir() });
    const [a, b] = await Promise.all([sampler.refresh(), sampler.refresh()]);
    expect(a).toBe(b);
  });

  it("rejects a refresh whose sources fail and reports periodic failures to onError", async () => {
    const errors: unknown[] = [];
    sampler = createHostSampler({ diskPath: join(tmpdir(), "drce-no-such-dir-", String(process.pid)), intervalMs: 10, onError: (e) => errors.push(e) });
    await expect(sampler.refresh()).rejects.toThrow(/ENOENT/);
    sampler.start();
    await expect.poll(() => errors.length, { timeout: 5000 }).toBeGreaterThan(0);
    expect(sampler.current()).toBe(emptyHostSnapshot);
  });

  it("checks its options once", () => {
    expect(() => createHostSampler({ diskPath: "" })).toThrow(/diskPath/);
    expect(() => createHostSampler({ diskPath: "/", intervalMs: 0 })).toThrow(/intervalMs/);
    expect(() => createHostSampler({ diskPath: "/", intervalMs: Number.NaN })).toThrow(/intervalMs/);
  });
});

describe("a sampler over a synthetic /proc", () => {
  let root: string;
  const kB = 1024;

  const cpuLine = (user: number, system: number, idle: number, iowait: number): string =>
    `cpu  ${user} 0 ${system} ${idle} ${iowait} 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0 0 0\ncpu2 0 0 0 0 0 0 0 0 0 0\ncpu3 0 0 0 0 0 0 0 0 0 0\nintr 1 2 3\nctxt 5\n`;
  const statOf = (pid: number, threads: number): string => {
    const fields: string[] = [];
    for (let n = 3; n <= 52; n++) fields.push(n === 3 ? "S" : n === 20 ? String(threads) : "0");
    return `${pid} (proc ${pid}) ${fields.join(" ")}\n`;
  };

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "drce-fake-proc-"));
    await mkdir(join(root, "sys", "kernel"), { recursive: true });
    await writeFile(join(root, "stat"), cpuLine(300, 100, 500, 100));
    await writeFile(
      join(root, "meminfo"),
      `MemTotal:       ${8_000_000} kB\nMemFree:         ${1_000_000} kB\nMemAvailable:    ${2_000_000} kB\nSwapTotal:       ${2_000_000} kB\nSwapFree:        ${1_000_000} kB\nHugePages_Total:       0\n`,
    );
    await writeFile(join(root, "loadavg"), "3.00 2.00 1.00 2/10 12345\n");
    await writeFile(join(root, "sys", "kernel", "pid_max"), "1000\n");
    await writeFile(join(root, "sys", "kernel", "threads-max"), "2000\n");
    for (const [pid, threads] of [
      [1, 1],
      [20, 3],
      [300, 6],
    ] as const) {
      await mkdir(join(root, String(pid)));
      await writeFile(join(root, String(pid), "stat"), statOf(pid, threads));
    }
    await mkdir(join(root, "self")); // not a process entry
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("computes every figure from the files", async () => {
    sampler = createHostSampler({ diskPath: root, procRoot: root });
    const s = await sampler.refresh();
    // The first sample averages since boot: 1000 ticks, 500 idle, 100 iowait.
    expect(s.cpuPercent).toBeCloseTo(40, 9);
    expect(s.iowaitPercent).toBeCloseTo(10, 9);
    expect(s.cpuCount).toBe(4);
    expect(s.memTotal).toBe(8_000_000 * kB);
    expect(s.memAvailable).toBe(2_000_000 * kB);
    expect(s.swapTotal).toBe(2_000_000 * kB);
    expect(s.swapFree).toBe(1_000_000 * kB);
    expect(s.rramFreePercent).toBeCloseTo(25, 9);
    expect(s.rramUsedPercent).toBeCloseTo(75, 9);
    expect(s.vramFreePercent).toBeCloseTo(30, 9);
    expect(s.vramUsedPercent).toBeCloseTo(70, 9);
    expect(s.processes).toBe(3);
    expect(s.threads).toBe(10);
    expect(s.processesPercent).toBeCloseTo(0.3, 9);
    expect(s.threadsPercent).toBeCloseTo(0.5, 9);
    expect(s.loadAvg1).toBe(3);
    expect(s.loadAvgPercent).toBeCloseTo(75, 9);
  });

  it("counts the processes from the entries of procfs and the threads from /proc/loadavg, reading no process's stat line", async () => {
    for (const pid of [1, 20, 300]) await rm(join(root, String(pid), "stat"));
    await writeFile(join(root, "loadavg"), "0.50 0.40 0.30 1/77 999\n");
    sampler = createHostSampler({ diskPath: root, procRoot: root });
    const s = await sampler.refresh();
    expect(s.processes).toBe(3);
    expect(s.threads).toBe(77);
    expect(s.threadsPercent).toBeCloseTo(3.85, 9);
  });

  it("reads the threads as 0 from a /proc/loadavg without its runnable/existing field", () => {
    expect(threadsOfLoadavg("0.50 0.40 0.30 1/77 999\n")).toBe(77);
    expect(threadsOfLoadavg("0.50 0.40 0.30\n")).toBe(0);
    expect(threadsOfLoadavg("0.50 0.40 0.30 77 999\n")).toBe(0);
    expect(threadsOfLoadavg("0.50 0.40 0.30 1/x 999\n")).toBe(0);
  });

  it("measures CPU and iowait as deltas between samples, ignoring intervals too short to mean anything", async () => {
    sampler = createHostSampler({ diskPath: root, procRoot: root });
    await sampler.refresh();
    // +400 ticks (10 per CPU is the minimum): 100 user, 100 system, 150 idle, 50 iowait.
    await writeFile(join(root, "stat"), cpuLine(400, 200, 650, 150));
    let s = await sampler.refresh();
    expect(s.cpuPercent).toBeCloseTo(50, 9);
    expect(s.iowaitPercent).toBeCloseTo(12.5, 9);
    // +20 ticks only: the figures stay and the baseline does not move.
    await writeFile(join(root, "stat"), cpuLine(420, 200, 650, 150));
    s = await sampler.refresh();
    expect(s.cpuPercent).toBeCloseTo(50, 9);
    // +20 more, 40 since the baseline: now measured, all of it busy.
    await writeFile(join(root, "stat"), cpuLine(440, 200, 650, 150));
    s = await sampler.refresh();
    expect(s.cpuPercent).toBeCloseTo(100, 9);
    expect(s.iowaitPercent).toBe(0);
  });

  it("gives the protocol's names and the balancing string, rounded to two decimals", async () => {
    sampler = createHostSampler({ diskPath: root, procRoot: root });
    const s = { ...(await sampler.refresh()), diskUsedPercent: 12.3456, processesPercent: 1 / 3 };
    expect(hostFields(s)).toEqual({
      HOST_CPU: 40,
      HOST_IOWAIT: 10,
      HOST_VRAM: 70,
      HOST_RRAM: 75,
      HOST_DISK: 12.35,
      HOST_PROCESSES: 0.33,
      HOST_THREADS: 0.5,
    });
    expect(resourceUsage(s)).toEqual({ CPU: 40, IOWAIT: 10, VRAM: 70, RRAM: 75, DISK: 12.35, PROCESSES: 0.33, THREADS: 0.5, LOADAVG: 75 });
    expect(balancingString(s)).toBe("40,10,70,75,12.35,0.33,0.5,75");
  });
});
