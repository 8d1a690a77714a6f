import { describe, expect, it } from "vitest";
import { noLimits, type Limits } from "../../src/domain/task.js";
import type { HostSnapshot } from "../../src/executor/host-sampler.js";
import { checkRunLimits, checkStartLimits, hasRunLimits, needsDiskUsage, type RunUsage } from "../../src/executor/limits.js";

const GiB = 1024 ** 3;

/** A host with round figures: 16 GiB RAM (4 free), 8 GiB swap (2 free), 100 GiB disk (25 free). */
const host: HostSnapshot = {
  cpuPercent: 60,
  iowaitPercent: 7.5,
  memTotal: 16 * GiB,
  memAvailable: 4 * GiB,
  swapTotal: 8 * GiB,
  swapFree: 2 * GiB,
  rramUsedPercent: 75,
  vramUsedPercent: 75,
  rramFreePercent: 25,
  vramFreePercent: 25,
  diskTotal: 100 * GiB,
  diskFree: 25 * GiB,
  diskUsedPercent: 75,
  diskFreePercent: 25,
  processes: 300,
  threads: 1200,
  processesPercent: 300 / 32768 * 100,
  threadsPercent: 1200 / 192000 * 100,
  loadAvg1: 1.5,
  loadAvgPercent: 37.5,
  cpuCount: 4,
  sampledAt: 1_700_000_000_000,
};

const limits = (fields: Partial<Limits>): Limits => ({ ...noLimits, ...fields });

describe("checkStartLimits", () => {
  it("lets a task without limits start", () => {
    expect(checkStartLimits(noLimits, host)).toBeUndefined();
  });

  // [limit field, protocol name, value that is broken, value at which the host is exactly at the limit, measured, message]
  const cases: readonly [keyof Limits, string, number, number, number, string][] = [
    ["procMax", "proc_max", 299, 300, 300, "proc_max: 300 processes are running, above the limit 299"],
    ["threadsMax", "threads_max", 1000, 1200, 1200, "threads_max: 1200 threads are running, above the limit 1000"],
    ["cpuMax", "cpu_max", 50, 60, 60, "cpu_max: CPU load 60% is above the limit 50%"],
    ["iowaitMax", "iowait_max", 5, 7.5, 7.5, "iowait_max: iowait 7.5% is above the limit 5%"],
    ["vramFree", "vram_free", 30, 25, 25, "vram_free: free virtual memory 25% is below the limit 30%"],
    ["vramFreeMin", "vram_free_min", 7 * GiB, 6 * GiB, 6 * GiB, `vram_free_min: free virtual memory ${6 * GiB} bytes is below the limit ${7 * GiB}`],
    ["rramFree", "rram_free", 26.5, 25, 25, "rram_free: free real memory 25% is below the limit 26.5%"],
    ["rramFreeMin", "rram_free_min", 5 * GiB, 4 * GiB, 4 * GiB, `rram_free_min: free real memory ${4 * GiB} bytes is below the limit ${5 * GiB}`],
    ["diskFree", "disk_free", 40, 25, 25, "disk_free: free disk space 25% is below the limit 40%"],
    ["diskFreeMin", "disk_free_min", 30 * GiB, 25 * GiB, 25 * GiB, `disk_free_min: free disk space ${25 * GiB} bytes is below the limit ${30 * GiB}`],
  ];

  for (const [field, name, broken, atLimit, measured, message] of cases) {
    it(`refuses a task when ${name} is broken, naming the limit and the measured figure`, () => {
      expect(checkStartLimits(limits({ [field]: broken }), host)).toEqual({ name, limit: broken, measured, message });
    });

    it(`lets a task start when the host is exactly at ${name}`, () => {
      expect(checkStartLimits(limits({ [field]: atLimit }), host)).toBeUndefined();
    });
  }

  it("reports the first limit broken in the protocol's order", () => {
    const violation = checkStartLimits(limits({ diskFree: 90, cpuMax: 10, threadsMax: 5 }), host);
    expect(violation?.name).toBe("threads_max");
  });

  it("writes the rram_free_min message as the protocol's callers expect it", () => {
    const poor = { ...host, memAvailable: 1234567 };
    expect(checkStartLimits(limits({ rramFreeMin: 99999999999 }), poor)?.message).toBe(
      "rram_free_min: free real memory 1234567 bytes is below the limit 99999999999",
    );
  });

  it("rounds percentages in messages to two decimals but keeps the exact measured figure", () => {
    const busy = { ...host, cpuPercent: 97.123456 };
    const violation = checkStartLimits(limits({ cpuMax: 90 }), busy);
    expect(violation?.message).toBe("cpu_max: CPU load 97.12% is above the limit 90%");
    expect(violation?.measured).toBe(97.123456);
  });
});

describe("checkRunLimits", () => {
  const usage: RunUsage = { rramBytes: 4 * GiB, vramBytes: 8 * GiB, diskBytes: 10 * GiB };

  it("lets a task without run limits go on", () => {
    expect(checkRunLimits(noLimits, usage, host)).toBeUndefined();
  });

  const cases: readonly [keyof Limits, string, number, number, number, string][] = [
    ["rramUsageMax", "rram_usage_max", 20, 25, 25, `rram_usage_max: the task's real memory ${4 * GiB} bytes (25% of the host's) is above the limit 20%`],
    [
      "vramUsageMax",
      "vram_usage_max",
      49.5,
      50,
      50,
      `vram_usage_max: the task's virtual memory ${8 * GiB} bytes (50% of the host's real memory) is above the limit 49.5%`,
    ],
    ["diskUsageMax", "disk_usage_max", 5, 10, 10, `disk_usage_max: the task's files ${10 * GiB} bytes (10% of the partition) are above the limit 5%`],
    ["diskUsageMaxBytes", "disk_usage_max_bytes", GiB, 10 * GiB, 10 * GiB, `disk_usage_max_bytes: the task's files ${10 * GiB} bytes are above the limit ${GiB}`],
    ["iowaitUsageMax", "iowait_usage_max", 5, 7.5, 7.5, "iowait_usage_max: host iowait 7.5% is above the limit 5%"],
  ];

  for (const [field, name, broken, atLimit, measured, message] of cases) {
    it(`stops a task when ${name} is broken, naming the limit and the measured figure`, () => {
      expect(checkRunLimits(limits({ [field]: broken }), usage, host)).toEqual({ name, limit: broken, measured, message });
    });

    it(`lets a task go on when it is exactly at ${name}`, () => {
      expect(checkRunLimits(limits({ [field]: atLimit }), usage, host)).toBeUndefined();
    });
  }

  it("does not judge percentages against a host that was never sampled", () => {
    const unknown = { ...host, memTotal: 0, diskTotal: 0 };
    expect(checkRunLimits(limits({ rramUsageMax: 1, vramUsageMax: 1, diskUsageMax: 1 }), usage, unknown)).toBeUndefined();
  });

  it("reports the first limit broken", () => {
    expect(checkRunLimits(limits({ iowaitUsageMax: 1, rramUsageMax: 1 }), usage, host)?.name).toBe("rram_usage_max");
  });
});

describe("hasRunLimits and needsDiskUsage", () => {
  it("tell which run-time measurements a task needs", () => {
    expect(hasRunLimits(noLimits)).toBe(false);
    expect(hasRunLimits(limits({ cpuMax: 50, diskFree: 10 }))).toBe(false);
    expect(hasRunLimits(limits({ iowaitUsageMax: 50 }))).toBe(true);
    expect(needsDiskUsage(limits({ iowaitUsageMax: 50, rramUsageMax: 5 }))).toBe(false);
    expect(needsDiskUsage(limits({ diskUsageMaxBytes: 1 }))).toBe(true);
    expect(needsDiskUsage(limits({ diskUsageMax: 1 }))).toBe(true);
  });
});
