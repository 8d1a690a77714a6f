import { execFile } from "node:child_process";
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { readFile, readdir } from "node:fs/promises";
import type { TaskUsage } from "./runner.js";

/** The fields of one `/proc/<pid>/stat` line that drce uses. Field numbers follow proc(5). */
export interface ProcStat {
  /** Field 1: process id. */
  readonly pid: number;
  /** Field 2: command name, without the surrounding parentheses. */
  readonly comm: string;
  /** Field 3: state letter (R, S, D, Z, ...). */
  readonly state: string;
  /** Field 4: parent pid. */
  readonly ppid: number;
  /** Field 5: process group id. */
  readonly pgrp: number;
  /** Field 6: session id. */
  readonly session: number;
  /** Field 14: user mode time, clock ticks. */
  readonly utime: number;
  /** Field 15: kernel mode time, clock ticks. */
  readonly stime: number;
  /** Field 20: number of threads. */
  readonly threads: number;
  /** Field 22: start time, clock ticks after boot. */
  readonly startTicks: number;
  /** Field 23: virtual memory size, bytes. */
  readonly vsize: number;
  /** Field 24: resident set size, pages. */
  readonly rssPages: number;
}

/**
 * Parses the text of a `/proc/<pid>/stat` file. The command name may hold spaces and
 * parentheses, so the fields after it are split after the last ')'. Returns undefined when
 * the text is not a stat line (e.g. empty because the process exited while it was read).
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const lparen = text.indexOf("(");
  const rparen = text.lastIndexOf(")");
  if (lparen < 0 || rparen < lparen) return undefined;
  const pid = Number(text.slice(0, lparen).trim());
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  // Fields 3..24 follow ") ", one space apart; only those are split out (the line has 52).
  const fields: string[] = [];
  let start = rparen + 2;
  while (fields.length < 22) {
    const end = text.indexOf(" ", start);
    if (end < 0) {
      const last = text.slice(start).trim();
      if (last !== "") fields.push(last);
      break;
    }
    fields.push(text.slice(start, end));
    start = end + 1;
  }
  if (fields.length < 22) return undefined;
  // fields[0] is field 3, so field n is fields[n - 3].
  const field = (n: number): number => Number(fields[n - 3]);
  return {
    pid,
    comm: text.slice(lparen + 1, rparen),
    state: fields[0] ?? "",
    ppid: field(4),
    pgrp: field(5),
    session: field(6),
    utime: field(14),
    stime: field(15),
    threads: field(20),
    startTicks: field(22),
    vsize: field(23),
    rssPages: field(24),
  };
}

/** Options of the functions that read `/proc`. */
export interface ProcOptions {
  /** Where procfs is mounted; "/proc" unless a test points it at a synthetic tree. */
  readonly procRoot?: string;
  /** How many stat files are read between two turns of the event loop. */
  readonly batchSize?: number;
}

const defaultBatchSize = 64;
const numericName = /^[0-9]+$/;

/**
 * Reads a small procfs file with one read(2) into a reused buffer (procfs produces a
 * `stat` line whole in one read). Returns undefined when the file is gone, including
 * ESRCH when the process exited between open and read.
 */
function readSmallSync(path: string, buffer: Buffer): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    // ENOENT: the process is gone.
    return undefined;
  }
  try {
    const bytesRead = readSync(fd, buffer, 0, buffer.length, 0);
    if (bytesRead < buffer.length) return buffer.toString("latin1", 0, bytesRead);
    return readFileSync(fd, "latin1"); // longer than the buffer: never for stat, but be safe
  } catch {
    // ESRCH: the process exited between open and read.
    return undefined;
  } finally {
    closeSync(fd);
  }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Lists the numeric entries of procfs: one per process (thread-group leader). */
export async function listProcPids(options: ProcOptions = {}): Promise<number[]> {
  const names = await readdir(options.procRoot ?? "/proc");
  const pids: number[] = [];
  for (const name of names) if (numericName.test(name)) pids.push(Number(name));
  return pids;
}

/**
 * Reads the stat lines of the given processes (every process when `pids` is undefined,
 * after one readdir of procfs). Processes that exit meanwhile are left out.
 *
 * The files are read synchronously, `batchSize` at a time with a turn of the event loop
 * between batches. Measured with 1000 processes: 15 ms of CPU for the whole scan this way,
 * against 80 ms through promise-based open/read/close with 8 reads in flight (and 150 ms
 * with readFile), whose thousands of tiny jobs also queue in front of the task store's
 * writes in libuv's four-thread pool. A procfs stat read does no disk I/O, so a batch of
 * 64 holds the event loop for about a millisecond.
 */
export async function readAllProcStats(options: ProcOptions = {}, pids?: readonly number[]): Promise<ProcStat[]> {
  const root = options.procRoot ?? "/proc";
  const batchSize = Math.max(1, options.batchSize ?? defaultBatchSize);
  const list = pids ?? (await listProcPids(options));
  const stats: ProcStat[] = [];
  const buffer = Buffer.allocUnsafe(4096);
  for (let i = 0; i < list.length; i++) {
    if (i > 0 && i % batchSize === 0) await turn();
    const text = readSmallSync(`${root}/${list[i]!}/stat`, buffer);
    const stat = text === undefined ? undefined : parseProcStat(text);
    if (stat !== undefined) stats.push(stat);
  }
  return stats;
}

/**
 * Lists the pids whose process group (stat field 5) is `pgid`. A process that left the
 * group with setsid() or setpgid() is not listed: only a cgroup can follow it.
 */
export async function listGroupPids(pgid: number, options: ProcOptions = {}): Promise<number[]> {
  const stats = await readAllProcStats(options);
  return stats.filter((s) => s.pgrp === pgid).map((s) => s.pid).sort((a, b) => a - b);
}

/**
 * Reads the start time of a process (stat field 22, clock ticks after boot), which with
 * the pid identifies it even after the pid is reused. Resolves to 0 when the process is gone.
 */
export async function readProcStartTicks(pid: number, options: ProcOptions = {}): Promise<number> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return 0;
  let text: string | undefined;
  try {
    // procfs answers from memory: a synchronous read is cheaper than a thread pool round trip.
    text = readFileSync(`${options.procRoot ?? "/proc"}/${pid}/stat`, "latin1");
  } catch {
    // The process is gone: its start time is 0, as documented.
    text = undefined;
  }
  const stat = text === undefined ? undefined : parseProcStat(text);
  return stat?.startTicks ?? 0;
}

/** One process's usage read from a single `/proc/<pid>/stat`, with its start time. */
export interface ProcessSample {
  /** Field 22: start time, clock ticks after boot (what guards a pid against reuse). */
  readonly startTicks: number;
  /** Its usage now; CPU over its lifetime, zero for a process younger than 10 ms. */
  readonly usage: TaskUsage;
}

/**
 * Samples one process (a task's leader right after its spawn) with one read of its stat
 * file: the start time the spawn record needs and a first usage figure, so that a task is
 * never shown running with no memory and no threads before its group's first sample.
 * Resolves to undefined when the process is gone.
 */
export async function sampleProcess(pid: number, options: ProcOptions = {}): Promise<ProcessSample | undefined> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const root = options.procRoot ?? "/proc";
  const read = (): ReturnType<typeof parseProcStat> => {
    try {
      // procfs answers from memory: a synchronous read is cheaper than a thread pool round trip.
      return parseProcStat(readFileSync(`${root}/${pid}/stat`, "latin1"));
    } catch {
      // The process is gone: no sample, as documented.
      return undefined;
    }
  };
  let stat = read();
  // A process read in the middle of its exec has its new address space and no page in it
  // yet: read again on the next turns of the event loop, so a live task never shows a
  // false zero (the window is a few microseconds; the bound only guards a strange kernel).
  for (let turn = 0; stat !== undefined && stat.rssPages === 0 && turn < 100; turn++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    stat = read();
  }
  if (stat === undefined) return undefined;
  const { pageSize, clockTicks } = await systemConstants();
  let uptime = 0;
  try {
    uptime = Number(readFileSync(`${root}/uptime`, "latin1").split(" ")[0]);
  } catch {
    // No uptime: the CPU figure waits for the group's first periodic sample.
  }
  const age = uptime - stat.startTicks / clockTicks;
  const cpuSeconds = age > 0.01 ? (stat.utime + stat.stime) / clockTicks / age : 0;
  return {
    startTicks: stat.startTicks,
    usage: { cpuPercent: Math.max(0, cpuSeconds * 100), vramBytes: stat.vsize, rramBytes: stat.rssPages * pageSize, threads: stat.threads, processes: 1 },
  };
}

/**
 * Tells whether the process with this pid is still the one that started at `startTicks`,
 * rather than gone or a newer process that was given the same pid.
 */
export async function isSameProcess(pid: number, startTicks: number, options: ProcOptions = {}): Promise<boolean> {
  if (startTicks <= 0) return false;
  return (await readProcStartTicks(pid, options)) === startTicks;
}

/** The system constants that turn stat fields into bytes and seconds. */
export interface SystemConstants {
  /** Bytes per page (`getconf PAGESIZE`). */
  readonly pageSize: number;
  /** Clock ticks per second (`getconf CLK_TCK`). */
  readonly clockTicks: number;
}

let constantsPromise: Promise<SystemConstants> | undefined;

function getconf(name: string, fallback: number): Promise<number> {
  return new Promise((resolve) => {
    execFile("getconf", [name], { timeout: 2000 }, (error, stdout) => {
      const value = Number(String(stdout).trim());
      resolve(error === null && Number.isSafeInteger(value) && value > 0 ? value : fallback);
    });
  });
}

/**
 * Reads the page size and clock tick rate once per process (through getconf), falling
 * back to 4096 bytes and 100 ticks per second, the values of every common Linux platform.
 */
export function systemConstants(): Promise<SystemConstants> {
  constantsPromise ??= Promise.all([getconf("PAGESIZE", 4096), getconf("CLK_TCK", 100)]).then(([pageSize, clockTicks]) => ({
    pageSize,
    clockTicks,
  }));
  return constantsPromise;
}

/** Samples the usage of one process group; see {@link createGroupUsageSampler}. */
export interface GroupUsageSampler {
  /** Sums the usage of the group's processes now; CPU is measured since the previous sample. */
  sample(): Promise<TaskUsage>;
}

/** Options of {@link createGroupUsageSampler}. */
export interface GroupUsageOptions extends ProcOptions {
  /**
   * Lists the task's processes, e.g. `TaskCgroup.pids` when the task runs in a control
   * group: then only their stat files are read instead of every process's, and processes
   * that left the process group with setsid() are still counted.
   */
  readonly members?: () => Promise<readonly number[]>;
}

/**
 * Creates a sampler for the processes of group `pgid` (or of `options.members`). Without
 * `members`, each sample scans procfs once and keeps the processes whose group is `pgid`. It
 * sums resident memory (field 24 times the page size), virtual memory (field 23) and
 * threads (field 20) over the group. CPU is percent of one CPU, from utime+stime (fields
 * 14, 15): for a process seen by the previous sample, over the time between samples; for
 * a process seen first, over its lifetime, so the first sample already gives a figure.
 * CPU spent by processes that exited between two samples is not counted.
 */
export function createGroupUsageSampler(pgid: number, options: GroupUsageOptions = {}): GroupUsageSampler {
  const root = options.procRoot ?? "/proc";
  // pid -> [startTicks, utime+stime] as of the previous sample.
  let previous = new Map<number, readonly [number, number]>();
  let previousAt = 0;
  return {
    async sample(): Promise<TaskUsage> {
      const listed = options.members === undefined ? undefined : await options.members();
      const [{ pageSize, clockTicks }, stats] = await Promise.all([systemConstants(), readAllProcStats(options, listed)]);
      const now = performance.now();
      const members = listed === undefined ? stats.filter((s) => s.pgrp === pgid) : stats;
      let uptime: number | undefined;
      let rss = 0;
      let vsize = 0;
      let threads = 0;
      let cpuSeconds = 0; // CPU seconds per wall second, summed
      const current = new Map<number, readonly [number, number]>();
      for (const s of members) {
        const ticks = s.utime + s.stime;
        rss += s.rssPages * pageSize;
        vsize += s.vsize;
        threads += s.threads;
        current.set(s.pid, [s.startTicks, ticks]);
        const before = previous.get(s.pid);
        if (before !== undefined && before[0] === s.startTicks && previousAt > 0) {
          const elapsed = (now - previousAt) / 1000;
          if (elapsed > 0) cpuSeconds += Math.max(0, ticks - before[1]) / clockTicks / elapsed;
        } else {
          uptime ??= await readUptime(root);
          const age = uptime - s.startTicks / clockTicks;
          // A process younger than a tick has had no time to be measured fairly.
          if (age > 0.01) cpuSeconds += ticks / clockTicks / age;
        }
      }
      previous = current;
      previousAt = now;
      return {
        cpuPercent: Math.max(0, cpuSeconds * 100),
        vramBytes: vsize,
        rramBytes: rss,
        threads,
        processes: members.length,
      };
    },
  };
}

async function readUptime(root: string): Promise<number> {
  try {
    return Number((await readFile(`${root}/uptime`, "latin1")).split(" ")[0]);
  } catch {
    // No uptime (a /proc without it): 0 makes every process look unborn, so the first CPU figure counts nothing rather than a wrong share.
    return 0;
  }
}
