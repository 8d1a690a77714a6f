import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "./config.js";
import { ResourceLog } from "./core/resource-log.js";
import { createNodeStats, type NodeStats } from "./core/node-stats.js";
import { createRunAsPolicy } from "./core/run-as.js";
import { createTaskCore } from "./core/task-core.js";
import { stateNames } from "./domain/states.js";
import { detectCgroups } from "./executor/cgroup.js";
import { createContainment, groupPrefixFor } from "./executor/containment.js";
import { hostFields, type HostSnapshot } from "./executor/host-sampler.js";
import { checkRunLimits, checkStartLimits } from "./executor/limits.js";
import { createLocalRunner } from "./executor/local-runner.js";
import { createSpawner } from "./executor/spawner.js";
import { directoryBytes } from "./executor/directory-bytes.js";
import { createSshRunner } from "./executor/ssh/ssh-runner.js";
import { lookupUser } from "./executor/users.js";
import { createInternalErrors, type InternalErrors } from "./internal-errors.js";
import type { Logger } from "./logger.js";
import { startHostReports } from "./host-reports.js";
import type { StartList } from "./start-list.js";
import { createSpaceReserve } from "./store/space-reserve.js";
import { createTaskStore, type TaskStore } from "./store/task-store.js";

/** The task core of a node, as {@link createTaskCore} builds it. */
export type DataNodeCore = ReturnType<typeof createTaskCore>;

/** Options of {@link createDataNode}. */
export interface DataNodeOptions {
  /** The node's validated configuration. */
  readonly config: Config;
  /** Where the parts log. */
  readonly logger: Logger;
  /** Where each part is recorded as it starts, so that closing stops them in reverse. */
  readonly starts: StartList;
  /** Test-only: crash the node at a write point (see TaskStoreOptions.crashAt). */
  readonly crashAt?: string | undefined;
}

/**
 * The parts of a node that run tasks, without any listener: the store, the runners, the host
 * sampler, the task core and the figures kept about them. The transports are built on top.
 */
export interface DataNode {
  /** The task store on the data directory. */
  readonly store: TaskStore;
  /** The task core. */
  readonly core: DataNodeCore;
  /** Resource reports (legacy 101), one per host sample. */
  readonly reports: ResourceLog;
  /** Counts of the node's tasks by mode, for the admin commands. */
  readonly stats: NodeStats;
  /** When the node started, in ms since the epoch. */
  readonly startedAt: number;
  /** The latest host sample (cached; no I/O). */
  host(): HostSnapshot;
  /** The node's internal-error path: the core's and the containment's failures, logged and counted. */
  readonly internalErrors: InternalErrors;
  /**
   * Loads the store and marks the tasks a previous run left unfinished as crashed, then empties
   * the control groups it left. Called once the node's event followers (metrics, notifier) are
   * in place, so that the events of recovered tasks reach them.
   */
  recover(): Promise<void>;
}

/**
 * Builds the data node's parts from the configuration, recording in `starts` each part that
 * has to be stopped: "store", then "runners", then "host sampler".
 */
export async function createDataNode(options: DataNodeOptions): Promise<DataNode> {
  const { config, logger, starts } = options;
  const internalErrors = createInternalErrors(logger);
  // Room kept on the data directory's disk for final statuses: a task whose output fills the
  // disk still ends durably, and a node starts on a full disk and refuses new work.
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const space = createSpaceReserve({
    path: join(config.dataDir, "space.reserve"),
    onChange: (change) => {
      if (change.full) logger.warn({ code: change.code, while: change.what, reserveBytes: change.reserveBytes }, "the data directory's disk is full: new tasks are refused and task output is no longer stored until space is freed; the storage reserve keeps room for final states");
      else logger.info({ reserveBytes: change.reserveBytes }, "the data directory's disk has room again: new tasks are accepted");
    },
  });
  // Task states are durable through the journal's group commits (see task-journal.ts).
  const store = await createTaskStore({
    dataDir: config.dataDir,
    crashAt: options.crashAt ?? process.env["DRCE_TEST_CRASH_AT"],
    space,
    journal: true,
    onJournalError: (error) => internalErrors.report("task", "the task journal's checkpoint failed; its segments are kept for the next one", error),
  });
  starts.started("store", () => store.close());

  const cgroups = config.cgroups ? await detectCgroups() : undefined;
  logger.info({ cgroups: cgroups === undefined ? "none" : `v${cgroups.version}` }, cgroups === undefined ? "tasks are contained by process group only" : "tasks are contained by cgroup");
  const containment = createContainment({ cgroups, groupPrefix: groupPrefixFor(config.dataDir), onWarning: (message, details) => logger.warn(details, message), onInternalError: (message, error, details) => internalErrors.report("containment", message, error, details) });
  const sshRunner = createSshRunner({ knownHostsFile: config.sshKnownHosts, trustOnFirstUse: config.sshTrustOnFirstUse });
  // Nothing the runner started may outlive the node unaccounted for (see local-runner.ts).
  const spawner = createSpawner({ killOnDisconnect: true, onFallback: (reason) => logger.warn({ reason }, "the native spawner cannot be used: tasks are started by the Node.js spawner") });
  // The native spawner is built (once per machine) while the node starts, not at its first task.
  void spawner.placesIntoCgroups?.();
  const localRunner = createLocalRunner({ containment, spawner });
  starts.started("runners", async () => {
    await Promise.all([sshRunner.close(), localRunner.close?.()]);
  });

  const startedAt = Date.now();
  const { host, reports } = await startHostReports(config, logger, starts);

  const stats = createNodeStats({ startedAt });
  const nodeUid = process.geteuid?.() ?? 0;
  const defaultUser = config.runAs === "" ? undefined : lookupUser(config.runAs);
  const core = createTaskCore({
    store,
    localRunner,
    runAs: createRunAsPolicy({ nodeUid, defaultUser: defaultUser?.uid === nodeUid ? undefined : defaultUser, allowRootTasks: config.allowRootTasks }),
    sshRunner,
    maxConcurrent: config.maxConcurrent,
    maxQueue: config.maxQueue,
    maxOutputBytes: config.maxOutputBytes,
    inlineOutputBytes: config.inlineOutputBytes,
    maxTaskMs: config.maxTaskMs,
    maxFileBytes: config.maxFileBytes,
    allowedDirs: config.allowedDirs,
    allowEnv: config.allowEnv,
    eventHistory: config.eventHistory,
    sampleIntervalMs: config.sampleIntervalMs,
    retainFinishedMs: config.retainFinishedMs,
    retainMaxTasks: config.retainMaxTasks,
    onRetentionSweep: (trees, tasks) => logger.info({ trees, tasks, retainFinishedMs: config.retainFinishedMs, retainMaxTasks: config.retainMaxTasks }, "finished tasks past the retention bounds were deleted"),
    resources: {
      checkStart: (spec) => checkStartLimits(spec.limits, host.current()),
      checkRun: (spec, usage) => checkRunLimits(spec.limits, usage, host.current()),
      directoryBytes: (dir) => directoryBytes(dir),
      hostFields: () => hostFields(host.current()),
    },
    onInternalError: (task, error) => internalErrors.report("task", "internal error while running a task", error, { task }),
    onEvent: (event) => {
      stats.record(event);
      const s = event.status;
      logger.info({ task: s.id, alias: s.alias || undefined, state: s.state, stateName: stateNames[s.state], exitStatus: s.exitStatus, errorCode: s.errorCode || undefined, durationMs: event.timeMs }, "task state");
    },
  });

  return {
    store,
    core,
    reports,
    stats,
    startedAt,
    host: () => host.current(),
    internalErrors,
    async recover() {
      const { recovered, loaded } = await core.init();
      // Groups of tasks that ran when the node died: kill what the process group missed.
      const swept = await containment.sweep();
      if (swept > 0) logger.warn({ swept }, "control groups left by a previous run were emptied and removed");
      if (recovered > 0) logger.warn({ recovered }, "tasks left unfinished by a previous run were marked crashed");
      logger.debug({ loaded }, "task store loaded");
    },
  };
}
