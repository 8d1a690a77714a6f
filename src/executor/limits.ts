import type { Limits } from "../domain/task.js";
import type { HostSnapshot } from "./host-sampler.js";

/**
 * A resource limit a task breaks: the task is not started (state 6) or is terminated,
 * with error 119 and `message` as its error message.
 */
export interface LimitViolation {
  /** The protocol's name of the limit, e.g. "rram_free_min". */
  readonly name: string;
  /** The limit as requested. */
  readonly limit: number;
  /** The figure measured against it. */
  readonly measured: number;
  /** A sentence naming the limit and both figures, safe to show a caller. */
  readonly message: string;
}

/** What a running task uses, as {@link checkRunLimits} compares it. */
export interface RunUsage {
  /** Resident memory of the task's processes, bytes. */
  readonly rramBytes: number;
  /** Virtual memory of the task's processes, bytes. */
  readonly vramBytes: number;
  /** Bytes the task's files take on disk (its directory). */
  readonly diskBytes: number;
}

/** Formats a figure for a message: integers as they are, others with at most two decimals. */
function show(value: number): string {
  return String(Math.round(value * 100) / 100);
}

function violation(name: string, limit: number, measured: number, message: string): LimitViolation {
  return { name, limit, measured, message: `${name}: ${message}` };
}

/** A maximum is broken when the measured figure is above it; zero means no limit. */
function above(limit: number, measured: number): boolean {
  return limit > 0 && measured > limit;
}

/** A minimum is broken when the measured figure is below it; zero means no limit. */
function below(limit: number, measured: number): boolean {
  return limit > 0 && measured < limit;
}

/**
 * Checks the limits that decide whether a task may start, against a host snapshot, and
 * returns the first one broken (in the protocol's order), or undefined when the task may
 * start. Zero means no limit; a maximum is broken when the host is above it and a minimum
 * when the host is below it, equality being allowed. The limits are: proc_max and
 * threads_max (process and thread counts), cpu_max and iowait_max (percent), vram_free
 * and rram_free (minimum free virtual/real memory, percent), vram_free_min and
 * rram_free_min (the same in bytes), disk_free (percent) and disk_free_min (bytes) of the
 * partition holding the task's data. The snapshot must come from a real sample: the empty
 * snapshot's zero free figures break every minimum.
 */
export function checkStartLimits(limits: Limits, host: HostSnapshot): LimitViolation | undefined {
  if (above(limits.procMax, host.processes)) {
    return violation("proc_max", limits.procMax, host.processes, `${host.processes} processes are running, above the limit ${show(limits.procMax)}`);
  }
  if (above(limits.threadsMax, host.threads)) {
    return violation("threads_max", limits.threadsMax, host.threads, `${host.threads} threads are running, above the limit ${show(limits.threadsMax)}`);
  }
  if (above(limits.cpuMax, host.cpuPercent)) {
    return violation("cpu_max", limits.cpuMax, host.cpuPercent, `CPU load ${show(host.cpuPercent)}% is above the limit ${show(limits.cpuMax)}%`);
  }
  if (above(limits.iowaitMax, host.iowaitPercent)) {
    return violation("iowait_max", limits.iowaitMax, host.iowaitPercent, `iowait ${show(host.iowaitPercent)}% is above the limit ${show(limits.iowaitMax)}%`);
  }
  if (below(limits.vramFree, host.vramFreePercent)) {
    return violation("vram_free", limits.vramFree, host.vramFreePercent, `free virtual memory ${show(host.vramFreePercent)}% is below the limit ${show(limits.vramFree)}%`);
  }
  const vramFreeBytes = host.memAvailable + host.swapFree;
  if (below(limits.vramFreeMin, vramFreeBytes)) {
    return violation("vram_free_min", limits.vramFreeMin, vramFreeBytes, `free virtual memory ${vramFreeBytes} bytes is below the limit ${show(limits.vramFreeMin)}`);
  }
  if (below(limits.rramFree, host.rramFreePercent)) {
    return violation("rram_free", limits.rramFree, host.rramFreePercent, `free real memory ${show(host.rramFreePercent)}% is below the limit ${show(limits.rramFree)}%`);
  }
  if (below(limits.rramFreeMin, host.memAvailable)) {
    return violation("rram_free_min", limits.rramFreeMin, host.memAvailable, `free real memory ${host.memAvailable} bytes is below the limit ${show(limits.rramFreeMin)}`);
  }
  if (below(limits.diskFree, host.diskFreePercent)) {
    return violation("disk_free", limits.diskFree, host.diskFreePercent, `free disk space ${show(host.diskFreePercent)}% is below the limit ${show(limits.diskFree)}%`);
  }
  if (below(limits.diskFreeMin, host.diskFree)) {
    return violation("disk_free_min", limits.diskFreeMin, host.diskFree, `free disk space ${host.diskFree} bytes is below the limit ${show(limits.diskFreeMin)}`);
  }
  return undefined;
}

/**
 * Checks the limits watched while a task runs and returns the first one broken, or
 * undefined. rram_usage_max and vram_usage_max compare the task's resident and virtual
 * memory with the host's real memory (memTotal), in percent; disk_usage_max compares the
 * task's disk bytes with the partition's size, in percent, and disk_usage_max_bytes with
 * a number of bytes; iowait_usage_max compares the host's iowait, in percent. Zero means
 * no limit; a percentage is not checked while the host figure it divides by is unknown
 * (zero).
 */
export function checkRunLimits(limits: Limits, usage: RunUsage, host: HostSnapshot): LimitViolation | undefined {
  if (limits.rramUsageMax > 0 && host.memTotal > 0) {
    const percent = (usage.rramBytes / host.memTotal) * 100;
    if (above(limits.rramUsageMax, percent)) {
      return violation(
        "rram_usage_max",
        limits.rramUsageMax,
        percent,
        `the task's real memory ${usage.rramBytes} bytes (${show(percent)}% of the host's) is above the limit ${show(limits.rramUsageMax)}%`,
      );
    }
  }
  if (limits.vramUsageMax > 0 && host.memTotal > 0) {
    const percent = (usage.vramBytes / host.memTotal) * 100;
    if (above(limits.vramUsageMax, percent)) {
      return violation(
        "vram_usage_max",
        limits.vramUsageMax,
        percent,
        `the task's virtual memory ${usage.vramBytes} bytes (${show(percent)}% of the host's real memory) is above the limit ${show(limits.vramUsageMax)}%`,
      );
    }
  }
  if (limits.diskUsageMax > 0 && host.diskTotal > 0) {
    const percent = (usage.diskBytes / host.diskTotal) * 100;
    if (above(limits.diskUsageMax, percent)) {
      return violation(
        "disk_usage_max",
        limits.diskUsageMax,
        percent,
        `the task's files ${usage.diskBytes} bytes (${show(percent)}% of the partition) are above the limit ${show(limits.diskUsageMax)}%`,
      );
    }
  }
  if (above(limits.diskUsageMaxBytes, usage.diskBytes)) {
    return violation(
      "disk_usage_max_bytes",
      limits.diskUsageMaxBytes,
      usage.diskBytes,
      `the task's files ${usage.diskBytes} bytes are above the limit ${show(limits.diskUsageMaxBytes)}`,
    );
  }
  if (above(limits.iowaitUsageMax, host.iowaitPercent)) {
    return violation(
      "iowait_usage_max",
      limits.iowaitUsageMax,
      host.iowaitPercent,
      `host iowait ${show(host.iowaitPercent)}% is above the limit ${show(limits.iowaitUsageMax)}%`,
    );
  }
  return undefined;
}

/**
 * Tells whether any limit watched while the task runs is set, so a caller can skip
 * sampling a task that has none.
 */
export function hasRunLimits(limits: Limits): boolean {
  return limits.rramUsageMax > 0 || limits.vramUsageMax > 0 || limits.diskUsageMax > 0 || limits.diskUsageMaxBytes > 0 || limits.iowaitUsageMax > 0;
}

/** Tells whether the run limits need the task's disk usage (a directory walk) to be measured. */
export function needsDiskUsage(limits: Limits): boolean {
  return limits.diskUsageMax > 0 || limits.diskUsageMaxBytes > 0;
}
