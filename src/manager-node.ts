import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "./config.js";
import { nodeTimeoutOf } from "./cluster/cluster-options.js";
import { readClusterTls } from "./cluster/cluster-tls.js";
import { createDirectTransport, type FleetTransport } from "./cluster/fleet-transport.js";
import { createManagerCore, type ManagerCore } from "./cluster/manager-core.js";
import { createLastStates } from "./cluster/last-states.js";
import { createMembership, type Membership } from "./cluster/membership.js";
import { createPlacementRecord } from "./cluster/placement-record.js";
import { createPlacer } from "./cluster/placement.js";
import { createNodeStats, type NodeStats } from "./core/node-stats.js";
import { ResourceLog } from "./core/resource-log.js";
import type { HostSnapshot } from "./executor/host-sampler.js";
import type { Logger } from "./logger.js";
import { startHostReports } from "./host-reports.js";
import type { StartList } from "./start-list.js";

/** Options of {@link createManagerNode}. */
export interface ManagerNodeOptions {
  /** The manager's validated configuration. */
  readonly config: Config;
  /** Where the parts log. */
  readonly logger: Logger;
  /** Where each part is recorded as it starts, so that closing stops them in reverse. */
  readonly starts: StartList;
}

/**
 * The parts of a manager, without any listener: the fleet transport, the node list, the
 * placement record and the manager's task core, plus the figures of its own host (its
 * resource reports and admin answers are those of the machine it runs on). The listeners are
 * the same as a data node's (see serveNode).
 */
export interface ManagerNode {
  /** The manager's task core. */
  readonly core: ManagerCore;
  /** The cluster's node list. */
  readonly membership: Membership;
  /** How the manager reaches its nodes. */
  readonly transport: FleetTransport;
  /** A manager keeps no task files, so its task infos carry no modification time (zero). */
  readonly store: { statusWrittenAt(id: string): Promise<number> };
  /** Resource reports of the manager's host. */
  readonly reports: ResourceLog;
  /** Counts of forwarded tasks by mode, fed by the manager's event log. */
  readonly stats: NodeStats;
  /** When the manager started, in ms since the epoch. */
  readonly startedAt: number;
  /** Silence after which a node is down, ms. */
  readonly nodeTimeoutMs: number;
  /** The latest sample of the manager's host. */
  host(): HostSnapshot;
  /** Subscribes to each forwarding's node and latency (for the metrics). */
  onDispatch(listener: (node: string, ms: number) => void): void;
  /** Reads the node list and the placement record back and starts polling and following the nodes. */
  recover(): Promise<void>;
}

/**
 * Builds a manager's parts from the configuration, recording in `starts` "host sampler",
 * then "cluster" (node list and transport); the task core's shutdown is recorded by serveNode
 * as "tasks", as on a data node.
 */
export async function createManagerNode(options: ManagerNodeOptions): Promise<ManagerNode> {
  const { config, logger, starts } = options;
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const startedAt = Date.now();
  const { host, reports } = await startHostReports(config, logger, starts);

  const nodeTimeoutMs = nodeTimeoutOf(config);
  // The manager reaches its nodes with the cluster token, its own --token.
  const tls = readClusterTls(config);
  const transport = createDirectTransport({ token: config.token, ...(tls === undefined ? {} : { tls }), connectTimeoutMs: Math.max(1000, config.heartbeatMs) });
  const membership = createMembership({ dataDir: config.dataDir, listed: config.nodes, heartbeatMs: config.heartbeatMs, nodeTimeoutMs, transport, logger });
  // Each placement is durable once its journal record is: one shared fdatasync instead of a file's create and syncs.
  const record = createPlacementRecord({
    dir: join(config.dataDir, "cluster", "placements"),
    journalDir: join(config.dataDir, "cluster", "placements-journal"),
    onCheckpointError: (error) => logger.error({ err: String(error) }, "a checkpoint of the placement record failed; its journal keeps every change, and the next checkpoint tries again"),
  });
  starts.started("placement record", () => record.close());
  const listeners: ((node: string, ms: number) => void)[] = [];
  const core = createManagerCore({
    members: membership,
    transport,
    record,
    lastStates: createLastStates({ dir: join(config.dataDir, "cluster"), logger }),
    placer: createPlacer({ mode: config.mode, weights: config.weights }),
    eventHistory: config.eventHistory,
    logger,
    onDispatch: (node, ms) => {
      for (const listener of listeners) listener(node, ms);
    },
  });
  starts.started("cluster", async () => {
    await membership.close();
    transport.close();
  });
  const stats = createNodeStats({ startedAt });
  const following = new AbortController();
  starts.started("manager stats", () => following.abort());

  return {
    core,
    membership,
    transport,
    store: { statusWrittenAt: async () => 0 },
    reports,
    stats,
    startedAt,
    nodeTimeoutMs,
    host: () => host.current(),
    onDispatch: (listener) => void listeners.push(listener),
    async recover() {
      await membership.start();
      const { loaded, states } = await core.init();
      void (async () => {
        for await (const event of core.events.watch(0, following.signal)) stats.record(event);
      })().catch(() => undefined); // ends with the manager's shutdown, the only way the watch stops
      logger.info({ nodes: membership.members().length, listed: config.nodes.length, placements: loaded, lastStates: states, mode: config.mode }, "manager ready");
    },
  };
}
