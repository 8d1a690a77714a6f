import { cachedHostFacts, type HostFacts } from "../executor/host-facts.js";
import { balancingString, resourceUsage, type HostSnapshot, type ResourceUsage } from "../executor/host-sampler.js";
import type { TaskStatus } from "../domain/task.js";
import type { TaskStore } from "../store/task-store.js";
import type { NodeIdentity } from "./api.js";
import type { NodeOptions } from "./node-options.js";
import type { NodeParts, NodeRole } from "./node-parts.js";
import type { NodeStats, NodeStatsSnapshot } from "./node-stats.js";
import type { ResourceLog, ResourceReport } from "./resource-log.js";

/**
 * The settings a node reports as its limits, picked from its options; a Config satisfies it.
 * Of the token, only whether it is empty is ever reported.
 */
export type NodeSettings = Pick<
  NodeOptions,
  "name" | "maxConcurrent" | "maxQueue" | "maxOutputBytes" | "maxTaskMs" | "maxRequestBytes" | "maxFileBytes" | "sampleIntervalMs" | "eventHistory" | "reportHistory" | "allowedDirs" | "allowEnv" | "token"
>;

/** The limits a node enforces, as reported: its settings, without the secret. */
export interface NodeLimits
  extends Pick<
    NodeSettings,
    "maxConcurrent" | "maxQueue" | "maxOutputBytes" | "maxTaskMs" | "maxRequestBytes" | "maxFileBytes" | "sampleIntervalMs" | "eventHistory" | "reportHistory" | "allowedDirs"
  > {
  readonly allowedEnv: readonly string[];
  readonly tokenRequired: boolean;
}

/** What a node says about itself. */
export interface NodeInfo {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly version: string;
  /** What the node does: "data" runs tasks itself, "manager" forwards them. */
  readonly role: NodeRole;
  /** Unix ms. */
  readonly startedAt: number;
  readonly uptimeMs: number;
  readonly limits: NodeLimits;
  /** Legacy ZeroMQ gateway endpoint, or empty. */
  readonly zmqEndpoint: string;
  /** Legacy ZeroMQ admin endpoint, or empty. */
  readonly adminZmqEndpoint: string;
}

/** The host's load from the latest cached sample. */
export interface UsageReading {
  /** The NODE_RESOURCE_USAGE figures. */
  readonly usage: ResourceUsage;
  /** "cpu,iowait,vram,rram,disk,processes,threads,loadavg". */
  readonly balancing: string;
  /** The sample itself. */
  readonly snapshot: HostSnapshot;
}

/** The legacy "task info data structure". */
export interface TaskInfo {
  readonly id: string;
  /** The task's stored status, as the JSON text of its status file. */
  readonly info: string;
  /** Last modification of the status file, Unix ms (zero when it could not be read). */
  readonly modified: number;
}

/** Options of {@link createNodeAdmin}. */
export interface NodeAdminOptions {
  readonly settings: NodeSettings;
  /** How the node names itself; its port is read at call time (it is known once listening). */
  readonly identity: NodeIdentity;
  readonly version: string;
  /** When the node started, Unix ms. */
  readonly startedAt: number;
  readonly core: Pick<NodeParts, "list">;
  /** What the node does; "data" unless given (a manager gives "manager"). */
  readonly role?: NodeRole;
  readonly store: Pick<TaskStore, "statusWrittenAt">;
  readonly stats: NodeStats;
  readonly reports: ResourceLog;
  /** The latest cached host sample; never samples. */
  readonly host: () => HostSnapshot;
  /** The endpoints bound so far (known once listening). */
  readonly endpoints?: () => { readonly zmq: string; readonly adminZmq: string };
  /** The host's static facts; by default read with systeminformation on the first call, then kept. */
  readonly hostFacts?: () => Promise<HostFacts>;
  /** The clock; Date.now unless a test gives another. */
  readonly now?: () => number;
}

/** The node administration use cases, shared by NodeService and the legacy admin commands. */
export interface NodeAdmin {
  /** Identity, version, start time and limits. */
  info(): NodeInfo;
  /** Task statistics since start, or since the last {@link NodeAdmin.resetStats}. */
  stats(): NodeStatsSnapshot;
  /** Starts the task statistics again from zero. */
  resetStats(): void;
  /** The host's load from the latest cached sample. */
  usage(): UsageReading;
  /** The host's static facts (OS, kernel, CPU, memory, file systems), read once and kept. */
  hostFacts(): Promise<HostFacts>;
  /** Every task the node holds (newest first), as id, start date, state and mode. */
  tasks(): readonly TaskStatus[];
  /** The info of every task (newest first) whose status `filter` accepts. */
  taskInfos(filter?: (status: TaskStatus) => boolean): Promise<TaskInfo[]>;
  /**
   * Resource reports after `afterSeq` (0: only new ones; -1: the whole kept history);
   * with `stopAtEnd`, ends once the reports kept so far were given.
   */
  watchReports(afterSeq: number, stopAtEnd: boolean, signal: AbortSignal): AsyncIterable<ResourceReport>;
}

/** Status files stat()ed at once while listing task infos. */
const statParallelism = 16;

/** Creates the node administration use cases over the core, the store and the node's samplers. */
export function createNodeAdmin(options: NodeAdminOptions): NodeAdmin {
  const { settings, identity, core, store, stats, reports } = options;
  const now = options.now ?? Date.now;
  const hostFacts = options.hostFacts ?? cachedHostFacts();
  const limits: NodeLimits = Object.freeze({
    maxConcurrent: settings.maxConcurrent,
    maxQueue: settings.maxQueue,
    maxOutputBytes: settings.maxOutputBytes,
    maxTaskMs: settings.maxTaskMs,
    maxRequestBytes: settings.maxRequestBytes,
    maxFileBytes: settings.maxFileBytes,
    sampleIntervalMs: settings.sampleIntervalMs,
    eventHistory: settings.eventHistory,
    reportHistory: settings.reportHistory,
    allowedDirs: [...settings.allowedDirs],
    allowedEnv: [...settings.allowEnv],
    tokenRequired: settings.token !== "",
  });

  const modifiedOf = (id: string): Promise<number> => store.statusWrittenAt(id);

  return {
    info() {
      const at = now();
      const endpoints = options.endpoints?.() ?? { zmq: "", adminZmq: "" };
      return {
        name: settings.name,
        host: identity.host,
        port: identity.port,
        version: options.version,
        role: options.role ?? "data",
        startedAt: options.startedAt,
        uptimeMs: Math.max(0, at - options.startedAt),
        limits,
        zmqEndpoint: endpoints.zmq,
        adminZmqEndpoint: endpoints.adminZmq,
      };
    },
    stats: () => stats.snapshot(),
    resetStats: () => stats.reset(),
    usage() {
      const snapshot = options.host();
      return { usage: resourceUsage(snapshot), balancing: balancingString(snapshot), snapshot };
    },
    hostFacts: () => hostFacts(),
    tasks: () => core.list(),
    async taskInfos(filter = () => true) {
      const statuses = core.list().filter(filter);
      const infos: TaskInfo[] = new Array<TaskInfo>(statuses.length);
      let next = 0;
      const workers = Array.from({ length: Math.min(statParallelism, statuses.length) }, async () => {
        for (let i = next++; i < statuses.length; i = next++) {
          const status = statuses[i]!;
          infos[i] = { id: status.id, info: JSON.stringify(status), modified: await modifiedOf(status.id) };
        }
      });
      await Promise.all(workers);
      return infos;
    },
    async *watchReports(afterSeq, stopAtEnd, signal) {
      if (!stopAtEnd) {
        yield* reports.watch(afterSeq, signal);
        return;
      }
      const from = afterSeq < 0 ? 0 : afterSeq === 0 ? reports.lastSeq : afterSeq;
      for (const report of reports.since(from)) {
        if (signal.aborted) return;
        yield report;
      }
    },
  };
}
