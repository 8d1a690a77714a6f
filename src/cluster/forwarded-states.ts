import type { TaskEvent } from "../core/api.js";
import { EventLog } from "../core/event-log.js";
import { eventFromProto, summaryFromProto } from "../client/from-proto.js";
import { TaskState } from "../domain/states.js";
import type { TaskStatus } from "../domain/task.js";
import type { TaskView } from "../domain/view.js";
import type { Logger } from "../logger.js";
import type { FleetTransport } from "./fleet-transport.js";
import type { LastStates } from "./last-states.js";
import type { Membership } from "./membership.js";
import type { PlacementRecord } from "./placement-record.js";

/** Options of {@link createForwardedStates}. */
export interface ForwardedStatesOptions {
  readonly members: Membership;
  readonly transport: FleetTransport;
  readonly record: PlacementRecord;
  /** Task events kept for watchers that resume. */
  readonly eventHistory: number;
  readonly logger: Logger;
  /** Called when a node reports that it deleted a task the record says it holds (its retention, or a call to it). */
  readonly onDeleted?: (node: string, id: string) => void;
  /** Where the last states are kept across restarts; in memory only without it. */
  readonly kept?: LastStates;
}

/**
 * What the manager knows of the tasks it forwarded: the last status each node reported for
 * each of them, and the manager's own event log of their state changes. Each node that is up
 * is followed (WatchTaskEvents, after one ListTasks to catch up), so the list, the metrics and
 * watchers of the manager see the tasks' states change without a call per task; a node that
 * comes back is caught up the same way, so its real states replace the last known ones.
 */
export interface ForwardedStates {
  /** The manager's task event log. */
  readonly events: EventLog;
  /** The last status of a task on a node, if any was seen. */
  status(node: string, id: string): TaskStatus | undefined;
  /** The last view of a task on a node (its status, time and subtasks; no output), if any was seen. */
  view(node: string, id: string): TaskView | undefined;
  /** Takes a view a node answered, its subtasks included. */
  noteView(node: string, view: TaskView): void;
  /** Forgets a deleted task tree on a node. */
  forget(node: string, ids: readonly string[]): void;
  /**
   * Reads the kept last states back (those of tasks the placement record still routes), so
   * that a call for a task on a node that is away answers with its last known state after a
   * restart too. Called once the record is loaded, before {@link start}.
   */
  load(): Promise<number>;
  /** Starts following the nodes that are up, and each node once it comes up. */
  start(): void;
  /** Stops following and writes the last states still pending. */
  close(): Promise<void>;
}

/** Creates the manager's knowledge of forwarded tasks. */
export function createForwardedStates(options: ForwardedStatesOptions): ForwardedStates {
  const { members, transport, record, logger } = options;
  const events = new EventLog(options.eventHistory);
  const views = new Map<string, Map<string, TaskView>>();
  const following = new Map<string, AbortController>();
  let closed = false;

  const held = (node: string, id: string): boolean => record.find(id)?.nodes.includes(node) === true;

  const noteStatus = (node: string, status: TaskStatus, timeMs: number, view?: TaskView): void => {
    let byId = views.get(node);
    if (byId === undefined) views.set(node, (byId = new Map()));
    const before = byId.get(status.id);
    const kept: TaskView = view === undefined ? { status: { ...(before?.status ?? {}), ...status }, timeMs, subtasks: before?.subtasks ?? [] } : { status: view.status, timeMs: view.timeMs, subtasks: [], ...(view.fields === undefined ? {} : { fields: view.fields }) };
    byId.set(status.id, kept);
    if (before?.status.state !== kept.status.state || before.status.exitStatus !== kept.status.exitStatus) {
      // Only a change of state is written: a poll of a running task changes nothing a caller is told of it.
      options.kept?.note(node, kept);
      events.append((seq): TaskEvent => ({ seq, status: kept.status, timeMs: kept.timeMs, at: Date.now(), node }));
    }
  };

  const noteView = (node: string, view: TaskView): void => {
    noteStatus(node, view.status, view.timeMs, view);
    for (const sub of view.subtasks) noteView(node, sub);
  };

  const follow = async (node: string, signal: AbortSignal): Promise<void> => {
    const member = members.get(node);
    if (member === undefined) return;
    const client = transport.tasks(member);
    const stream = client.watchTaskEvents({ afterSeq: 0n }, { signal })[Symbol.asyncIterator]();
    // The watch is asked for before the list, so a change between the two is not missed.
    const first = stream.next();
    first.catch(() => undefined); // awaited below; a failure here ends the follow the same way
    const list = await client.listTasks({}, { signal, timeoutMs: 30_000 });
    for (const summary of list.tasks) {
      const status = summaryFromProto(summary);
      if (held(node, status.id)) noteStatus(node, { ...(views.get(node)?.get(status.id)?.status ?? {}), ...status } as TaskStatus, views.get(node)?.get(status.id)?.timeMs ?? 0);
    }
    for (let next = await first; next.done !== true; next = await stream.next()) {
      const event = eventFromProto(next.value.event!);
      if (held(node, event.status.id)) {
        const before = views.get(node)?.get(event.status.id)?.status;
        noteStatus(node, { ...(before ?? {}), ...event.status, alias: event.status.alias || (before?.alias ?? "") } as TaskStatus, event.timeMs);
        if (event.status.state === TaskState.Deleted) options.onDeleted?.(node, event.status.id);
      }
    }
  };

  const startFollowing = (node: string): void => {
    if (closed || following.has(node)) return;
    const controller = new AbortController();
    following.set(node, controller);
    void follow(node, controller.signal)
      .catch((error: unknown) => {
        if (!controller.signal.aborted) logger.debug({ node, err: String(error) }, "stopped following a node's task events");
      })
      .finally(() => {
        if (following.get(node) === controller) following.delete(node);
        // A stream that ended while the node stays up (a restart between two heartbeats) is taken up again.
        if (!closed && !controller.signal.aborted && members.get(node)?.state === "up") setTimeout(() => startFollowing(node), 1000).unref();
      });
  };

  return {
    events,
    status: (node, id) => views.get(node)?.get(id)?.status,
    view: (node, id) => views.get(node)?.get(id),
    noteView,
    forget(node, ids) {
      for (const id of ids) views.get(node)?.delete(id);
      options.kept?.forget(node, ids);
    },
    async load() {
      if (options.kept === undefined) return 0;
      let restored = 0;
      for (const [node, byId] of await options.kept.load()) {
        const gone: string[] = [];
        for (const [id, view] of byId) {
          if (!held(node, id)) {
            gone.push(id);
            continue;
          }
          let mine = views.get(node);
          if (mine === undefined) views.set(node, (mine = new Map()));
          // A state seen since the start is newer than the kept one.
          if (!mine.has(id)) mine.set(id, view);
          restored++;
        }
        // Tasks the record no longer routes (swept while their last line was written) leave the log.
        options.kept.forget(node, gone);
      }
      return restored;
    },
    start() {
      for (const member of members.members()) if (member.state === "up") startFollowing(member.name);
      members.onChange((member, before) => {
        if (member.state === "up") {
          // A node that was away may have restarted: its stream is gone, start it again.
          if (before !== "up") following.get(member.name)?.abort();
          following.delete(member.name);
          startFollowing(member.name);
        }
      });
    },
    async close() {
      closed = true;
      for (const controller of following.values()) controller.abort();
      following.clear();
      await options.kept?.close();
    },
  };
}
