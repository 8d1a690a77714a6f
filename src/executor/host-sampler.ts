import { readFileSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { listProcPids } from "./process-usage.js";

/**
 * The host's load at one moment, as the limits, the extended check (HOST_* fields), the
 * resource report and the manager's balancing read it. Percentages are 0..100.
 */
export interface HostSnapshot {
  /** CPU busy time over the last interval (100 minus idle, iowait counted as idle), percent. */
  readonly cpuPercent: number;
  /** Time the CPUs waited for I/O over the last interval, percent. */
  readonly iowaitPercent: number;
  /** Real memory, bytes. */
  readonly memTotal: number;
  /** Real memory available to new programs without swapping (MemAvailable), bytes. */
  readonly memAvailable: number;
  /** Swap, bytes. */
  readonly swapTotal: number;
  /** Free swap, bytes. */
  readonly swapFree: number;
  /** Real memory in use, percent of memTotal. */
  readonly rramUsedPercent: number;
  /** Virtual memory (real memory plus swap) in use, percent. */
  readonly vramUsedPercent: number;
  /** Real memory available, percent of memTotal. */
  readonly rramFreePercent: number;
  /** Virtual memory (real memory plus swap) available, percent. */
  readonly vramFreePercent: number;
  /** Size of the partition holding the tasks' data, bytes. */
  readonly diskTotal: number;
  /** Space on that partition available to unprivileged users, bytes. */
  readonly diskFree: number;
  /** Space of that partition in use, percent. */
  readonly diskUsedPercent: number;
  /** Space of that partition available, percent. */
  readonly diskFreePercent: number;
  /** Processes on the host. */
  readonly processes: number;
  /** Threads on the host, summed over the processes. */
  readonly threads: number;
  /** Processes, percent of the kernel's pid_max. */
  readonly processesPercent: number;
  /** Threads, percent of the kernel's threads-max. */
  readonly threadsPercent: number;
  /** Load average over one minute. */
  readonly loadAvg1: number;
  /** Load average over one minute, percent of the CPU count. */
  readonly loadAvgPercent: number;
  /** Online CPUs. */
  readonly cpuCount: number;
  /** When the snapshot was taken, Unix ms; zero for the empty snapshot before the first sample. */
  readonly sampledAt: number;
}

/** The snapshot {@link HostSampler.current} gives before the first sample: every figure zero. */
export const emptyHostSnapshot: HostSnapshot = Object.freeze({
  cpuPercent: 0,
  iowaitPercent: 0,
  memTotal: 0,
  memAvailable: 0,
  swapTotal: 0,
  swapFree: 0,
  rramUsedPercent: 0,
  vramUsedPercent: 0,
  rramFreePercent: 0,
  vramFreePercent: 0,
  diskTotal: 0,
  diskFree: 0,
  diskUsedPercent: 0,
  diskFreePercent: 0,
  processes: 0,
  threads: 0,
  processesPercent: 0,
  threadsPercent: 0,
  loadAvg1: 0,
  loadAvgPercent: 0,
  cpuCount: 0,
  sampledAt: 0,
});

/** Options of {@link createHostSampler}. */
export interface HostSamplerOptions {
  /** Milliseconds between samples once started; 2000 unless given. */
  readonly intervalMs?: number;
  /** A path on the partition whose free space the disk figures and limits describe. */
  readonly diskPath: string;
  /** Where procfs is mounted; "/proc" unless a test points it at a synthetic tree. */
  readonly procRoot?: string;
  /** Told about a failed periodic sample; the previous snapshot stays current. */
  readonly onError?: (error: unknown) => void;
  /** Told about each periodic sample once it is current (resource reports). */
  readonly onSample?: (snapshot: HostSnapshot) => void;
}

/** A periodic sampler of the host's load; see {@link createHostSampler}. */
export interface HostSampler {
  /** Takes a first sample at once and then one every interval; calling it again does nothing. */
  start(): void;
  /** Stops sampling; the last snapshot stays current. */
  stop(): void;
  /** The latest snapshot, without any I/O ({@link emptyHostSnapshot} before the first sample). */
  current(): HostSnapshot;
  /** Takes a sample now (joining one already under way) and makes it current. */
  refresh(): Promise<HostSnapshot>;
}

/** CPU time counters of the aggregate "cpu" line of /proc/stat, in clock ticks. */
interface CpuTimes {
  readonly total: number;
  readonly idle: number;
  readonly iowait: number;
}

/**
 * Below this many ticks per CPU between two samples (0.1 s at 100 Hz) the CPU figures are
 * too coarse to mean anything: a refresh() right after a periodic sample would read 0% or
 * 100%. The previous figures are kept and the baseline is not advanced.
 */
const minTicksPerCpu = 10;

/**
 * Creates a sampler of the host's load. Samples read /proc/stat (CPU and iowait as deltas
 * between samples; the first sample averages since boot), /proc/meminfo, /proc/loadavg,
 * the kernel's pid_max and threads-max, the entries of procfs (one per process) and statfs()
 * of `diskPath`. The host's threads are /proc/loadavg's count of the kernel's scheduling
 * entities (every thread, kernel threads too), the sum the stat lines of every process give:
 * reading those cost a node about 2 ms of CPU a second on a host of 77 processes, and 20
 * nodes on one host each paid it. The timer is unref()ed, so a running
 * sampler never keeps the process alive.
 */
export function createHostSampler(options: HostSamplerOptions): HostSampler {
  const intervalMs = options.intervalMs ?? 2000;
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) throw new RangeError(`intervalMs must be a positive number, not ${intervalMs}`);
  if (typeof options.diskPath !== "string" || options.diskPath === "") throw new TypeError("diskPath must be a non-empty path");
  const procRoot = options.procRoot ?? "/proc";
  const diskPath = options.diskPath;

  let snapshot: HostSnapshot = emptyHostSnapshot;
  let baseline: CpuTimes = { total: 0, idle: 0, iowait: 0 };
  let inFlight: Promise<HostSnapshot> | undefined;
  let timer: NodeJS.Timeout | undefined;

  const sample = async (): Promise<HostSnapshot> => {
    // procfs answers from memory: five synchronous reads cost a node far less CPU than five
    // promise-based readFile()s (open, fstat, read, close, each a thread pool round trip),
    // which 20 idle nodes on one host paid every second.
    const statText = readFileSync(`${procRoot}/stat`, "latin1");
    const meminfoText = readFileSync(`${procRoot}/meminfo`, "latin1");
    const loadavgText = readFileSync(`${procRoot}/loadavg`, "latin1");
    const pidMaxText = readFileSync(`${procRoot}/sys/kernel/pid_max`, "latin1");
    const threadsMaxText = readFileSync(`${procRoot}/sys/kernel/threads-max`, "latin1");
    const [disk, pids] = await Promise.all([statfs(diskPath), listProcPids({ procRoot })]);
    const { times, cpuCount } = parseCpuTimes(statText);
    let cpuPercent = snapshot.cpuPercent;
    let iowaitPercent = snapshot.iowaitPercent;
    const dTotal = times.total - baseline.total;
    if (snapshot.sampledAt === 0 || dTotal >= minTicksPerCpu * Math.max(1, cpuCount)) {
      const dIdle = times.idle - baseline.idle;
      const dIowait = times.iowait - baseline.iowait;
      cpuPercent = dTotal > 0 ? clampPercent(100 - ((dIdle + dIowait) / dTotal) * 100) : 0;
      iowaitPercent = dTotal > 0 ? clampPercent((dIowait / dTotal) * 100) : 0;
      baseline = times;
    }

    const mem = parseMeminfo(meminfoText);
    const memTotal = mem.get("MemTotal") ?? 0;
    // MemAvailable exists since Linux 3.14; before that, free + cache is the usual estimate.
    const memAvailable = mem.get("MemAvailable") ?? (mem.get("MemFree") ?? 0) + (mem.get("Cached") ?? 0) + (mem.get("Buffers") ?? 0);
    const swapTotal = mem.get("SwapTotal") ?? 0;
    const swapFree = mem.get("SwapFree") ?? 0;
    const rramFreePercent = percentOf(memAvailable, memTotal);
    const vramFreePercent = percentOf(memAvailable + swapFree, memTotal + swapTotal);

    const diskTotal = Number(disk.blocks) * Number(disk.bsize);
    const diskFree = Number(disk.bavail) * Number(disk.bsize);
    const diskFreePercent = percentOf(diskFree, diskTotal);

    const processes = pids.length;
    const threads = threadsOfLoadavg(loadavgText);
    const pidMax = Number(pidMaxText.trim());
    const threadsMax = Number(threadsMaxText.trim());
    const loadAvg1 = Number(loadavgText.split(" ")[0]) || 0;

    return Object.freeze({
      cpuPercent,
      iowaitPercent,
      memTotal,
      memAvailable,
      swapTotal,
      swapFree,
      rramUsedPercent: memTotal > 0 ? 100 - rramFreePercent : 0,
      vramUsedPercent: memTotal + swapTotal > 0 ? 100 - vramFreePercent : 0,
      rramFreePercent,
      vramFreePercent,
      diskTotal,
      diskFree,
      diskUsedPercent: diskTotal > 0 ? 100 - diskFreePercent : 0,
      diskFreePercent,
      processes,
      threads,
      processesPercent: pidMax > 0 ? clampPercent((processes / pidMax) * 100) : 0,
      threadsPercent: threadsMax > 0 ? clampPercent((threads / threadsMax) * 100) : 0,
      loadAvg1,
      loadAvgPercent: cpuCount > 0 ? (loadAvg1 / cpuCount) * 100 : 0,
      cpuCount,
      sampledAt: Date.now(),
    });
  };

  const refresh = (): Promise<HostSnapshot> => {
    inFlight ??= sample()
      .then((next) => {
        snapshot = next;
        return next;
      })
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };

  const tick = (): void => {
    refresh().then((next) => options.onSample?.(next), (error: unknown) => options.onError?.(error));
  };

  return {
    start() {
      if (timer !== undefined) return;
      timer = setInterval(tick, intervalMs);
      timer.unref();
      tick();
    },
    stop() {
      if (timer === undefined) return;
      clearInterval(timer);
      timer = undefined;
    },
    current: () => snapshot,
    refresh,
  };
}

/**
 * The fourth field of /proc/loadavg, "runnable/existing": the kernel scheduling entities that
 * exist (every thread of every process, and the kernel's threads). 0 when it cannot be read.
 */
export function threadsOfLoadavg(text: string): number {
  const field = text.split(" ")[3] ?? "";
  const existing = Number(field.slice(field.indexOf("/") + 1));
  return field.includes("/") && Number.isSafeInteger(existing) && existing >= 0 ? existing : 0;
}

/** Reads the aggregate "cpu" line and counts the "cpuN" lines of /proc/stat. */
function parseCpuTimes(text: string): { times: CpuTimes; cpuCount: number } {
  let times: CpuTimes = { total: 0, idle: 0, iowait: 0 };
  let cpuCount = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith("cpu")) continue;
    if (line.startsWith("cpu ")) {
      // user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is
      // already inside user and nice, so only the first eight make the total.
      const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
      const total = values.reduce((sum, v) => sum + (Number.isFinite(v) ? v : 0), 0);
      times = { total, idle: values[3] ?? 0, iowait: values[4] ?? 0 };
    } else if (/^cpu[0-9]+\s/.test(line)) {
      cpuCount++;
    }
  }
  return { times, cpuCount };
}

/** Reads /proc/meminfo into bytes by key. */
function parseMeminfo(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^([A-Za-z0-9_()]+):\s+([0-9]+)(?:\s+kB)?/.exec(line);
    if (match === null) continue;
    const value = Number(match[2]);
    values.set(match[1]!, line.trimEnd().endsWith("kB") ? value * 1024 : value);
  }
  return values;
}

function percentOf(part: number, whole: number): number {
  return whole > 0 ? clampPercent((part / whole) * 100) : 0;
}

function clampPercent(value: number): number {
  return Math.min(100, Math.max(0, value));
}

/** Rounds to two decimals, the precision of every figure drce reports. */
function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

/**
 * The HOST_* fields of an extended check (protocol "fields_dictionary"): HOST_CPU,
 * HOST_IOWAIT, HOST_VRAM, HOST_RRAM, HOST_DISK, HOST_PROCESSES and HOST_THREADS, each a
 * percentage of use rounded to two decimals.
 */
export function hostFields(s: HostSnapshot): Record<string, number> {
  return {
    HOST_CPU: round2(s.cpuPercent),
    HOST_IOWAIT: round2(s.iowaitPercent),
    HOST_VRAM: round2(s.vramUsedPercent),
    HOST_RRAM: round2(s.rramUsedPercent),
    HOST_DISK: round2(s.diskUsedPercent),
    HOST_PROCESSES: round2(s.processesPercent),
    HOST_THREADS: round2(s.threadsPercent),
  };
}

/** The figures of the protocol's NODE_RESOURCE_USAGE, percentages rounded to two decimals. */
export interface ResourceUsage {
  readonly CPU: number;
  readonly IOWAIT: number;
  readonly VRAM: number;
  readonly RRAM: number;
  readonly DISK: number;
  readonly PROCESSES: number;
  readonly THREADS: number;
  /** One-minute load average, percent of the CPU count (may pass 100). */
  readonly LOADAVG: number;
}

/** The NODE_RESOURCE_USAGE answer for a snapshot: eight percentages rounded to two decimals. */
export function resourceUsage(s: HostSnapshot): ResourceUsage {
  return {
    CPU: round2(s.cpuPercent),
    IOWAIT: round2(s.iowaitPercent),
    VRAM: round2(s.vramUsedPercent),
    RRAM: round2(s.rramUsedPercent),
    DISK: round2(s.diskUsedPercent),
    PROCESSES: round2(s.processesPercent),
    THREADS: round2(s.threadsPercent),
    LOADAVG: round2(s.loadAvgPercent),
  };
}

/**
 * The balancing string a data node gives its manager:
 * "cpu,iowait,vram,rram,disk,processes,threads,loadavg", each a percentage rounded to two
 * decimals and written without trailing zeros (e.g. "12.5,0,40.25,38,71.02,0.26,0.05,4").
 */
export function balancingString(s: HostSnapshot): string {
  const u = resourceUsage(s);
  return [u.CPU, u.IOWAIT, u.VRAM, u.RRAM, u.DISK, u.PROCESSES, u.THREADS, u.LOADAVG].map(String).join(",");
}
