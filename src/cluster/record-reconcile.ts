import { errorFromConnect } from "../client/error-from-connect.js";
import type { ManagerContext } from "./manager-context.js";
import type { PlacementEntry } from "./placement-record.js";

/** Options of {@link createRecordReconcile}. */
export interface RecordReconcileOptions {
  /** Removes a swept entry from the record and the forwarded states (what a followed deletion does). */
  readonly sweep: (entry: PlacementEntry) => Promise<void>;
  /** When this manager process started, Unix ms: entries placed before it have no forwarding in flight. */
  readonly startedAt: number;
  /** Age past which an entry placed by this process has no forwarding in flight either, ms. */
  readonly settledAfterMs?: number;
}

/** What one reconciliation with a node did. */
export interface ReconcileOutcome {
  /** Entries held by the node that were checked. */
  readonly checked: number;
  /** Entries the node did not list, asked for by id on every node holding them. */
  readonly asked: number;
  /** Entries swept: every node holding their task answered NotFound. */
  readonly swept: number;
}

/**
 * The reconciliation of the placement record with a node that is (again) reachable: a task
 * deleted on its node(s) while the manager was down or the node unreachable (their retention,
 * or a caller talking to a node directly) sent no event the manager saw, and its entry would
 * stay for ever. For the record's entries held by the node, the node's task list is read; an
 * entry whose root the list lacks is asked for by id on every node holding it, and swept only
 * when every one of them answers NotFound. A node that does not answer, or answers anything
 * else, removes nothing. Entries of a fan-out this process still runs, and entries this
 * process placed so recently that their forwarding may still be on its way, are left alone.
 */
export interface RecordReconcile {
  /** Reconciles the record with a node; runs once at a time per node (a call during one runs it again after). */
  reconcile(node: string): Promise<ReconcileOutcome>;
  /** Reconciles with each node that is up, and with each node once it is first up in this process or back from down. */
  start(): void;
}

/** Creates the reconciliation over the manager's context. */
export function createRecordReconcile(context: ManagerContext, options: RecordReconcileOptions): RecordReconcile {
  const { record, members, fanOuts, transport, logger } = context;
  const settledAfterMs = options.settledAfterMs ?? 30_000;
  const running = new Map<string, Promise<ReconcileOutcome>>();
  const again = new Set<string>();
  const seen = new Set<string>();

  /** Whether the node answered that it does not hold the task (and nothing else). */
  const notFoundOn = async (node: string, id: string): Promise<boolean> => {
    try {
      await context.tasksOf(node).getTask({ task: id }, { timeoutMs: 30_000 });
      return false;
    } catch (error) {
      return transport.delivery(error) === "answered" && errorFromConnect(error).kind === "not-found";
    }
  };

  const once = async (node: string): Promise<ReconcileOutcome> => {
    const now = Date.now();
    const candidates = record.entries().filter((entry) => entry.nodes.includes(node) && !fanOuts.has(entry.id) && (entry.placedAt < options.startedAt || entry.placedAt < now - settledAfterMs));
    if (candidates.length === 0) return { checked: 0, asked: 0, swept: 0 };
    const listed = new Set((await context.tasksOf(node).listTasks({}, { timeoutMs: 30_000 })).tasks.map((task) => task.id));
    const absent = candidates.filter((entry) => !listed.has(entry.id));
    let swept = 0;
    for (const entry of absent) {
      let gone = true;
      for (const holder of entry.nodes) {
        if (!(await notFoundOn(holder, entry.id))) {
          gone = false;
          break;
        }
      }
      // An entry changed meanwhile (a new submission took the id, a rollout moved on) is not the one asked about.
      if (!gone || record.find(entry.id) !== entry || fanOuts.has(entry.id)) continue;
      await options.sweep(entry);
      swept++;
    }
    return { checked: candidates.length, asked: absent.length, swept };
  };

  const reconcile = (node: string): Promise<ReconcileOutcome> => {
    const current = running.get(node);
    if (current !== undefined) {
      again.add(node);
      return current;
    }
    const run = (async () => {
      try {
        for (;;) {
          again.delete(node);
          const outcome = await once(node);
          if (outcome.checked > 0) logger.info({ node, ...outcome }, "reconciled the placement record with a node");
          if (!again.has(node)) return outcome;
        }
      } finally {
        running.delete(node);
      }
    })();
    running.set(node, run);
    return run;
  };

  const launch = (node: string): void => {
    seen.add(node);
    // A node that stops answering mid-way removes nothing; it is reconciled again once it is back.
    void reconcile(node).catch((error: unknown) => logger.debug({ node, err: String(error) }, "the placement record could not be reconciled with a node"));
  };

  return {
    reconcile,
    start() {
      for (const member of members.members()) if (member.state === "up") launch(member.name);
      members.onChange((member, before) => {
        if (member.state === "up" && (before === "down" || before === undefined || !seen.has(member.name))) launch(member.name);
      });
    },
  };
}
