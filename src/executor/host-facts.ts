import { hostname } from "node:os";

/** The static facts of the host a node runs on: what a manager wants to know to place tasks. */
export interface HostFacts {
  /** Host name as the operating system gives it. */
  readonly hostname: string;
  /** Operating system family ("linux"). */
  readonly platform: string;
  /** Distribution name ("Debian GNU/Linux"). */
  readonly osName: string;
  /** Distribution version ("12"). */
  readonly osRelease: string;
  /** Distribution code name ("bookworm"). */
  readonly osCodename: string;
  /** Kernel version. */
  readonly kernel: string;
  /** Machine architecture ("x64"). */
  readonly arch: string;
  /** CPU maker. */
  readonly cpuManufacturer: string;
  /** CPU model. */
  readonly cpuModel: string;
  /** Logical CPUs the operating system offers. */
  readonly cpuCount: number;
  /** Physical cores. */
  readonly cpuPhysicalCores: number;
  /** Nominal clock speed in MHz, zero when the host does not tell. */
  readonly cpuSpeedMhz: number;
  /** Physical memory, bytes. */
  readonly memoryBytes: number;
  /** Swap space, bytes. */
  readonly swapBytes: number;
  /** Mounted file systems backed by a device. */
  readonly disks: readonly HostDisk[];
  /** Node.js version running the node. */
  readonly nodeVersion: string;
}

/** One mounted file system. */
export interface HostDisk {
  /** Device or source ("/dev/sda1"). */
  readonly device: string;
  /** File system type ("ext4"). */
  readonly type: string;
  /** Mount point. */
  readonly mount: string;
  /** Size, bytes. */
  readonly sizeBytes: number;
}

/**
 * Reads the host's static facts with systeminformation, loaded at the first call. It reads /proc and /sys and runs a
 * few short commands (lscpu, df), a few hundred milliseconds in all: call it once and keep
 * the answer (see {@link cachedHostFacts}). A part that cannot be read leaves its facts empty
 * or zero rather than failing the whole answer.
 */
export async function readHostFacts(): Promise<HostFacts> {
  // Loaded at the first read, not at start: its modules are megabytes of an idle node's
  // memory (BENCHMARKS.md, "Idle memory"), and most nodes are never asked for their facts.
  const { default: si } = await import("systeminformation");
  // Each part on its own: a container without lscpu or df still tells its OS and memory.
  const [os, cpu, mem, fs] = await Promise.all([
    si.osInfo().catch(() => undefined), // the facts it would give stay empty
    si.cpu().catch(() => undefined), // likewise
    si.mem().catch(() => undefined), // likewise
    si.fsSize().catch(() => []), // no file systems listed
  ]);
  return {
    hostname: os?.hostname || hostname(),
    platform: os?.platform || process.platform,
    osName: os?.distro ?? "",
    osRelease: os?.release ?? "",
    osCodename: os?.codename ?? "",
    kernel: os?.kernel ?? "",
    arch: os?.arch || process.arch,
    cpuManufacturer: cpu?.manufacturer ?? "",
    cpuModel: cpu?.brand ?? "",
    cpuCount: cpu?.cores ?? 0,
    cpuPhysicalCores: cpu?.physicalCores ?? 0,
    cpuSpeedMhz: Math.round((cpu?.speed ?? 0) * 1000),
    memoryBytes: mem?.total ?? 0,
    swapBytes: mem?.swaptotal ?? 0,
    disks: fs.map((f) => ({ device: f.fs, type: f.type, mount: f.mount, sizeBytes: f.size })),
    nodeVersion: process.version,
  };
}

/**
 * The host facts read once, on the first call, and answered from memory afterwards: they
 * do not change while the node runs, and nothing reads them on the request path twice.
 * A first read that fails is tried again on the next call.
 */
export function cachedHostFacts(read: () => Promise<HostFacts> = readHostFacts): () => Promise<HostFacts> {
  let facts: Promise<HostFacts> | undefined;
  return () => {
    facts ??= read().catch((error: unknown) => {
      facts = undefined;
      throw error;
    });
    return facts;
  };
}
