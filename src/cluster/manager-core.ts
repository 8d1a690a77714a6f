import type { TaskCore, TaskEvent } from "../core/api.js";
import type { SequenceLog } from "../core/sequence-log.js";
import { TaskState } from "../domain/states.js";
import { createFanOut } from "./fan-out.js";
import { createForwardedStates } from "./forwarded-states.js";
import { createForwarding } from "./forwarding.js";
import { createInputPipes } from "./input-pipes.js";
import { createManagerContext } from "./manager-context.js";
import type { ManagerCoreOptions } from "./manager-core-options.js";
import { createManagerRuns } from "./manager-runs.js";
import { createManagerStreams } from "./manager-streams.js";
import { createSubmission } from "./manager-submission.js";
import { createMergedViews } from "./merged-views.js";
import { createNodeCalls } from "./node-calls.js";
import type { PlacementEntry } from "./placement-record.js";
import { createRecordReconcile } from "./record-reconcile.js";
import { createRoutedCalls } from "./routed-calls.js";

export type { ManagerCoreOptions } from "./manager-core-options.js";

/** The manager's task core: the TaskCore every adapter serves, plus what the node's parts read. */
export interface ManagerCore extends TaskCore {
  /** The manager's event log of forwarded tasks' state changes. */
  readonly events: SequenceLog<TaskEvent>;
  /** Execution slots over the cluster: tasks running on the nodes (the manager queues none itself). */
  readonly slots: { readonly active: number; readonly queued: number };
  /** Loads the placement record and the last known states, starts following the nodes and reconciling the record with them. */
  init(): Promise<{ loaded: number; states: number }>;
  /** Stops forwarding: fan-outs stop starting nodes, the calls in flight are let go. */
  shutdown(graceMs: number): Promise<void>;
}

/**
 * Creates the manager's TaskCore: the wiring of its concerns (forwarding, fan-out, routed
 * calls, runs, output streams, merged views) over one shared context. A submission is placed
 * (the placer), recorded durably (the placement record) and only then forwarded; a task a
 * node accepted is never sent elsewhere, and a submission goes to another node only when the
 * first provably never got it. Mode "all" runs through the rollout with its rate controls.
 * Every later call by id or alias goes to the node(s) holding the task; a node that does not
 * answer is named in an "unavailable" error (legacy 5000) carrying the last known state, or,
 * for a fanned-out task, in that node's "unreachable" item.
 */
export function createManagerCore(options: ManagerCoreOptions): ManagerCore {
  const { members, transport, record, logger } = options;
  const startedAt = Date.now();
  /** Removes the entry of a tree its nodes deleted, and what is known of it there. */
  const sweep = (entry: PlacementEntry): Promise<void> =>
    record
      .remove(entry.id)
      .then(() => {
        for (const name of entry.nodes) states.forget(name, entry.ids);
      })
      .catch((error: unknown) => logger.error({ task: entry.id, err: String(error) }, "a swept task's placement entry could not be removed; it stays, and calls for the task get NotFound from its nodes"));
  // A tree every node of which deleted its root (their retention swept it) leaves the record too.
  const onDeleted = (node: string, id: string): void => {
    const entry = record.find(id);
    if (entry === undefined || entry.id !== id || context.fanOuts.has(id)) return;
    if (!entry.nodes.every((name) => name === node || states.status(name, id)?.state === TaskState.Deleted)) return;
    void sweep(entry);
  };
  const states = createForwardedStates({ members, transport, record, eventHistory: options.eventHistory, logger, onDeleted, ...(options.lastStates === undefined ? {} : { kept: options.lastStates }) });
  const shutdown = new AbortController();
  const context = createManagerContext(options, states, shutdown.signal);
  const pipes = createInputPipes(transport);
  const calls = createNodeCalls(context);
  const views = createMergedViews(context);
  const forwarding = createForwarding(context);
  const fanOut = createFanOut(context, views);
  const routed = createRoutedCalls(context, { calls, views, pipes });
  const reconcile = createRecordReconcile(context, { sweep, startedAt });

  return {
    events: states.events,
    get slots() {
      let active = 0;
      for (const member of members.members()) if (member.state !== "down") active += member.running;
      return { active, queued: 0 };
    },
    async init() {
      const loaded = await record.load((file, error) => logger.error({ file, err: String(error) }, "a placement record entry could not be read; its task is not routed"));
      const kept = await states.load();
      states.start();
      for (const entry of record.entries()) if (entry.kind === "all" && entry.rollout !== undefined) fanOut.resume(entry);
      // After the resumed rollouts, so that their entries are not taken for deleted ones.
      reconcile.start();
      return { loaded, states: kept };
    },
    async shutdown(graceMs) {
      shutdown.abort();
      pipes.close();
      const running = [...context.fanOuts.values()].map((running) => running.done);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(running), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
      await states.close();
    },
    submit: createSubmission(context, { forwarding, fanOut, calls, views }),
    list: views.list,
    placedOn: (id) => record.find(id)?.nodes ?? [],
    run: createManagerRuns(context, { forwarding, fanOut, views }),
    streamOutput: createManagerStreams(context, views),
    ...routed,
  };
}
