import type { Client } from "@connectrpc/connect";
import type { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { errorFromConnect } from "../client/error-from-connect.js";
import { DrceError } from "../domain/errors.js";
import type { NodeResult } from "../domain/placement.js";
import { TaskState } from "../domain/states.js";
import type { TaskStatus } from "../domain/task.js";
import type { TaskView } from "../domain/view.js";
import type { ManagerContext, NodeTaskResult } from "./manager-context.js";
import { failureReason } from "./node-failure.js";
import { failedResult, mergeFanOut, nodeResultOf, notStartedResult, unreachableResult } from "./node-results.js";
import type { PlacementEntry } from "./placement-record.js";

/** The views of fanned-out tasks, merged from their nodes' items, and the manager's task list. */
export interface MergedViews {
  /**
   * Runs a call on every node of a fanned-out task and merges the items; `node` is told each
   * node that answered. A node that fails is its item (failed, unreachable, not started).
   */
  fanOutCall(entry: PlacementEntry, id: string, call: (client: Client<typeof TaskService>) => Promise<NodeTaskResult | undefined>, node?: (name: string) => void): Promise<TaskView>;
  /** The items of a fan-out's nodes that never got the task (down when placed, or skipped by max-errors). */
  skippedItems(entry: PlacementEntry): NodeResult[];
  /** Every task the manager routes, from the last states its nodes reported, newest first. */
  list(): TaskStatus[];
}

/** Creates the merged views over the manager's context. */
export function createMergedViews(context: ManagerContext): MergedViews {
  const { states, record, members, transport } = context;

  /** One node's item for a call on a fanned-out task, never throwing: a failure is the item. */
  const itemOf = async (entry: PlacementEntry, node: string, id: string, call: (client: Client<typeof TaskService>) => Promise<TaskView>): Promise<NodeResult> => {
    const skipped = entry.skipped[node];
    if (skipped === "not-started") return notStartedResult(node, "not started: the fan-out stopped before this node");
    if (skipped === "unreachable") return unreachableResult(node, "it was down when the task was placed; the task was never sent to it");
    try {
      return nodeResultOf(node, await call(context.tasksOf(node)));
    } catch (error) {
      const delivery = error instanceof DrceError ? "answered" : transport.delivery(error);
      const last = states.view(node, id);
      if (delivery === "answered") {
        const mapped = error instanceof DrceError ? error : errorFromConnect(error);
        // A node that never got its share (the manager stopped mid-rollout) does not know the id.
        if (mapped.kind === "not-found" && last === undefined) return notStartedResult(node, "not started: the node does not hold the task");
        return failedResult(node, mapped.legacyCode, mapped.message, last);
      }
      return unreachableResult(node, failureReason(error), last);
    }
  };

  const placeholder = (entry: PlacementEntry, id: string): TaskStatus => ({ ...mergeFanOut({ id, alias: id === entry.id ? entry.alias : "", mode: entry.mode, placedAt: entry.placedAt, items: [] }).status, state: TaskState.New });

  return {
    async fanOutCall(entry, id, call, node) {
      const names = [...entry.nodes, ...Object.keys(entry.skipped).filter((name) => !entry.nodes.includes(name))];
      const items = await Promise.all(
        names.map((name) =>
          itemOf(entry, name, id, async (client) => {
            const view = context.viewAndNote(name, await call(client));
            node?.(name);
            return view;
          }),
        ),
      );
      const running = context.fanOuts.get(entry.id);
      // Nodes the rollout has not reached yet are not started so far, not failed.
      const shown = items.map((item) => (running !== undefined && item.status === "not-started" && !running.items.has(item.node) ? { ...item, errorMessage: "not started yet (max concurrency)" } : item));
      return mergeFanOut({ id, alias: id === entry.id ? entry.alias : "", mode: entry.mode, placedAt: entry.placedAt, items: shown, pending: running !== undefined });
    },
    skippedItems: (entry) =>
      Object.entries(entry.skipped).map(([name, why]) => (why === "unreachable" ? unreachableResult(name, members.get(name) === undefined ? "no such node in the cluster" : "it was down when the task was placed; the task was never sent to it") : notStartedResult(name, "not started"))),
    list() {
      const out: TaskStatus[] = [];
      for (const entry of record.entries()) {
        for (const id of entry.ids) {
          if (entry.kind === "one") {
            out.push(states.status(entry.nodes[0]!, id) ?? placeholder(entry, id));
            continue;
          }
          const items = entry.nodes.map((node): NodeResult => {
            const view = states.view(node, id);
            return view === undefined ? { node, status: "running", errorCode: 0, errorMessage: "" } : nodeResultOf(node, view);
          });
          out.push(mergeFanOut({ id, alias: id === entry.id ? entry.alias : "", mode: entry.mode, placedAt: entry.placedAt, items }).status);
        }
      }
      return out;
    },
  };
}
