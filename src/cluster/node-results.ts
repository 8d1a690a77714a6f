import { ErrorCode } from "../domain/errors.js";
import type { NodeResult, NodeRunStatus } from "../domain/placement.js";
import { isFinalState, TaskState } from "../domain/states.js";
import { taskStatus, type TaskStatus } from "../domain/task.js";
import type { TaskView } from "../domain/view.js";
import { compareNames } from "./placement.js";

/** How a task in a node's view fared: finished, timed out, failed, or still running. */
export function runStatusOf(status: TaskStatus): NodeRunStatus {
  if (!isFinalState(status.state)) return "running";
  if (status.state === TaskState.Expired) return "timed-out";
  return status.state === TaskState.Finished ? "finished" : "failed";
}

/** One node's item for a task it holds, from its view. */
export function nodeResultOf(node: string, view: TaskView): NodeResult {
  return { node, status: runStatusOf(view.status), view, errorCode: 0, errorMessage: "" };
}

/**
 * The item of a node that could not be reached: "unreachable", with the last view the
 * manager knew when there is one, legacy error 5000 and a message naming the node.
 */
export function unreachableResult(node: string, cause: string, last?: TaskView): NodeResult {
  return { node, status: "unreachable", ...(last === undefined ? {} : { view: last }), errorCode: ErrorCode.NoTargetNode, errorMessage: `node ${node} is unreachable: ${cause}` };
}

/** The item of a node that answered the call with an error of its own. */
export function failedResult(node: string, errorCode: number, message: string, last?: TaskView): NodeResult {
  return { node, status: "failed", ...(last === undefined ? {} : { view: last }), errorCode: errorCode === 0 ? ErrorCode.InternalFo : errorCode, errorMessage: `node ${node}: ${message}` };
}

/** The item of a node that never got the task. */
export function notStartedResult(node: string, why: string): NodeResult {
  return { node, status: "not-started", errorCode: 0, errorMessage: why };
}

/** What the merged view of a fanned-out task is made from. */
export interface FanOutParts {
  /** The root task's id, alias and mode. */
  readonly id: string;
  readonly alias: string;
  readonly mode: number;
  /** When the manager placed it, Unix ms. */
  readonly placedAt: number;
  /** One item per selected node. */
  readonly items: readonly NodeResult[];
  /** True while the rollout still has nodes to start: the whole is not final yet, whatever the items say. */
  readonly pending?: boolean;
}

/**
 * The merged view of a task placed on several nodes. It is final once every node's item is
 * (none "running") and the rollout has no node left to start, then "finished" as a whole. Its exit status is the first non-zero exit
 * status in node name order, and its error code the first non-zero error code of an item
 * (5000 for an unreachable node), so a caller that reads only the root sees a failure on any
 * node; `nodes` holds every item in name order. Output stays with each node's item.
 */
export function mergeFanOut(parts: FanOutParts): TaskView {
  const items = [...parts.items].sort((a, b) => compareNames(a.node, b.node));
  const views = items.flatMap((item) => (item.view === undefined ? [] : [item.view]));
  const running = parts.pending === true || items.some((item) => item.status === "running");
  const exitStatus = views.find((view) => view.status.exitStatus !== 0)?.status.exitStatus ?? 0;
  const failing = items.find((item) => item.errorCode !== 0) ?? items.find((item) => item.view !== undefined && item.view.status.errorCode !== 0);
  const errorCode = failing === undefined ? 0 : failing.errorCode !== 0 ? failing.errorCode : (failing.view?.status.errorCode ?? 0);
  const errorMessage = failing === undefined ? "" : failing.errorCode !== 0 ? failing.errorMessage : `node ${failing.node}: ${failing.view?.status.errorMessage ?? ""}`;
  const started = views.map((view) => view.status.startedAt).filter((at) => at > 0);
  const finished = views.map((view) => view.status.finishedAt);
  const status = taskStatus({
    id: parts.id,
    alias: parts.alias,
    mode: parts.mode === 2 ? 2 : 1,
    state: running ? TaskState.InProgress : TaskState.Finished,
    errorCode,
    errorMessage,
    exitStatus,
    submittedAt: parts.placedAt,
    startedAt: started.length === 0 ? 0 : Math.min(...started),
    finishedAt: running ? 0 : Math.max(0, ...finished),
  });
  return { status, timeMs: Math.max(0, ...views.map((view) => view.timeMs)), subtasks: [], nodes: items };
}
