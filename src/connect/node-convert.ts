import { create } from "@bufbuild/protobuf";
import {
  HostFactsSchema,
  type HostFacts as ProtoHostFacts,
  HostSampleSchema,
  NodeInfoSchema,
  NodeLimitsSchema,
  NodeStatsSchema,
  ResourceReportSchema,
  ResourceUsageSchema,
  StatFigureSchema,
  TaskInfoSchema,
  TaskModeStatsSchema,
  type HostSample,
  type NodeInfo as ProtoNodeInfo,
  type NodeStats as ProtoNodeStats,
  type ResourceReport as ProtoResourceReport,
  type ResourceUsage as ProtoResourceUsage,
  type StatFigure as ProtoStatFigure,
  type TaskInfo as ProtoTaskInfo,
  type TaskModeStats,
} from "../../gen/drce/v1/node_service_pb.js";
import type { NodeInfo, TaskInfo } from "../core/node-admin.js";
import type { ModeStats, NodeStatsSnapshot, StatFigure } from "../core/node-stats.js";
import type { ResourceReport } from "../core/resource-log.js";
import type { HostFacts } from "../executor/host-facts.js";
import type { HostSnapshot, ResourceUsage } from "../executor/host-sampler.js";

/** A non-negative integer as uint64 (figures are whole, but guard against fractions and NaN). */
const u64 = (value: number): bigint => BigInt(Math.max(0, Math.round(Number.isFinite(value) ? value : 0)));

/** Converts the node's info. */
export function nodeInfoToProto(info: NodeInfo): ProtoNodeInfo {
  const l = info.limits;
  return create(NodeInfoSchema, {
    name: info.name,
    host: info.host,
    port: info.port,
    version: info.version,
    role: info.role,
    startedAtMs: BigInt(info.startedAt),
    uptimeMs: u64(info.uptimeMs),
    limits: create(NodeLimitsSchema, {
      maxConcurrent: l.maxConcurrent,
      maxQueue: l.maxQueue,
      maxOutputBytes: u64(l.maxOutputBytes),
      maxTaskMs: u64(l.maxTaskMs),
      maxRequestBytes: u64(l.maxRequestBytes),
      maxFileBytes: u64(l.maxFileBytes),
      sampleIntervalMs: l.sampleIntervalMs,
      eventHistory: l.eventHistory,
      reportHistory: l.reportHistory,
      allowedDirs: [...l.allowedDirs],
      allowedEnv: [...l.allowedEnv],
      tokenRequired: l.tokenRequired,
    }),
    zmqEndpoint: info.zmqEndpoint,
    adminZmqEndpoint: info.adminZmqEndpoint,
  });
}

function figureToProto(figure: StatFigure): ProtoStatFigure {
  return create(StatFigureSchema, { min: figure.min, avg: figure.avg, max: figure.max, count: u64(figure.count) });
}

function modeToProto(mode: ModeStats): TaskModeStats {
  return create(TaskModeStatsSchema, {
    tasks: u64(mode.tasks),
    failed: u64(mode.failed),
    timeMs: figureToProto(mode.timeMs),
    inputBytes: figureToProto(mode.inputBytes),
    outputBytes: figureToProto(mode.outputBytes),
    cpuPercent: figureToProto(mode.cpuPercent),
    memoryBytes: figureToProto(mode.memoryBytes),
    perMinute: figureToProto(mode.perMinute),
  });
}

/** Converts the node's task statistics. */
export function nodeStatsToProto(stats: NodeStatsSnapshot): ProtoNodeStats {
  return create(NodeStatsSchema, {
    startedAtMs: BigInt(stats.startedAt),
    computedAtMs: BigInt(stats.computedAt),
    sync: modeToProto(stats.sync),
    async: modeToProto(stats.async),
  });
}

/** Converts the eight NODE_RESOURCE_USAGE figures. */
export function usageToProto(u: ResourceUsage): ProtoResourceUsage {
  return create(ResourceUsageSchema, {
    cpu: u.CPU,
    iowait: u.IOWAIT,
    vram: u.VRAM,
    rram: u.RRAM,
    disk: u.DISK,
    processes: u.PROCESSES,
    threads: u.THREADS,
    loadavg: u.LOADAVG,
  });
}

/** Converts the raw figures of a host sample. */
export function hostToProto(s: HostSnapshot): HostSample {
  return create(HostSampleSchema, {
    memTotalBytes: u64(s.memTotal),
    memAvailableBytes: u64(s.memAvailable),
    swapTotalBytes: u64(s.swapTotal),
    swapFreeBytes: u64(s.swapFree),
    diskTotalBytes: u64(s.diskTotal),
    diskFreeBytes: u64(s.diskFree),
    processes: s.processes,
    threads: s.threads,
    loadAverage: s.loadAvg1,
    cpuCount: s.cpuCount,
  });
}

/** Converts a resource report. */
export function reportToProto(report: ResourceReport): ProtoResourceReport {
  return create(ResourceReportSchema, {
    seq: BigInt(report.seq),
    timeUnixMs: BigInt(report.at),
    usage: usageToProto(report.usage),
    balancing: report.balancing,
    host: hostToProto(report.snapshot),
  });
}

/** Converts a task info. */
export function taskInfoToProto(info: TaskInfo): ProtoTaskInfo {
  return create(TaskInfoSchema, { id: info.id, info: info.info, modifiedAtMs: BigInt(info.modified) });
}

/** Converts the host's static facts, with the drce version of the node that read them. */
export function hostFactsToProto(facts: HostFacts, drceVersion: string): ProtoHostFacts {
  return create(HostFactsSchema, {
    drceVersion,
    hostname: facts.hostname,
    platform: facts.platform,
    osName: facts.osName,
    osRelease: facts.osRelease,
    osCodename: facts.osCodename,
    kernel: facts.kernel,
    arch: facts.arch,
    cpuManufacturer: facts.cpuManufacturer,
    cpuModel: facts.cpuModel,
    cpuCount: facts.cpuCount,
    cpuPhysicalCores: facts.cpuPhysicalCores,
    cpuSpeedMhz: facts.cpuSpeedMhz,
    memoryBytes: BigInt(facts.memoryBytes),
    swapBytes: BigInt(facts.swapBytes),
    disks: facts.disks.map((d) => ({ device: d.device, type: d.type, mount: d.mount, sizeBytes: BigInt(d.sizeBytes) })),
    nodeVersion: facts.nodeVersion,
  });
}
