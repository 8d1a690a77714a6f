import { NodeRunStatus, TaskState, type NodeResult, type TaskResult } from "../../../gen/drce/v1/task_pb.js";

/** How one node's part of a run stands, in the words the progress view shows. */
export type NodeProgressStatus = "running" | "finished" | "failed" | "timed-out" | "unreachable" | "not-started";

/** One node's part of a run: its status, its exit status once it finished, and why it failed. */
export interface NodeProgress {
  /** The node's name. */
  readonly node: string;
  /** How its part stands. */
  readonly status: NodeProgressStatus;
  /** The command's exit status on the node, when it finished there. */
  readonly exitStatus?: number;
  /** The node's task id, for its detail view. */
  readonly taskId?: string;
  /** The manager's or node's sentence for a part that did not finish. */
  readonly message?: string;
}

/** The status words of the proto's node run statuses (an unknown one reads as still running). */
const statuses: Readonly<Partial<Record<NodeRunStatus, NodeProgressStatus>>> = {
  [NodeRunStatus.RUNNING]: "running",
  [NodeRunStatus.FINISHED]: "finished",
  [NodeRunStatus.FAILED]: "failed",
  [NodeRunStatus.TIMED_OUT]: "timed-out",
  [NodeRunStatus.UNREACHABLE]: "unreachable",
  [NodeRunStatus.NOT_STARTED]: "not-started",
};

/** One node's progress from its item in a fanned-out task's result. */
export function progressOf(item: NodeResult): NodeProgress {
  const status = statuses[item.status] ?? "running";
  const result = item.result;
  return {
    node: item.node,
    status,
    ...(status === "finished" && result !== undefined ? { exitStatus: result.exitStatus } : {}),
    ...(result !== undefined && result.id !== "" ? { taskId: result.id } : {}),
    ...(item.errorMessage !== "" ? { message: item.errorMessage } : result !== undefined && result.errorMessage !== "" ? { message: result.errorMessage } : {}),
  };
}

/** Whether a node's part is over, whatever its outcome. */
export function isDone(progress: NodeProgress): boolean {
  return progress.status !== "running";
}

/** The text of a node's status, such as "exit 3", "timed out" or "not started". */
export function statusText(progress: NodeProgress): string {
  if (progress.status === "finished") return `exit ${progress.exitStatus ?? 0}`;
  return progress.status.replace("-", " ");
}

/** The badge class of a node's status: a finished part is green only when it exited 0. */
export function statusClass(progress: NodeProgress): string {
  if (progress.status === "running") return "state-running";
  if (progress.status === "finished") return progress.exitStatus === 0 || progress.exitStatus === undefined ? "state-finished" : "state-failed";
  if (progress.status === "not-started") return "state-deleted";
  return progress.status === "timed-out" ? "state-timeout" : "state-failed";
}

/** The sentence for a single task's end: its state, its exit status when it finished, and its error. */
export function endText(result: TaskResult): string {
  const state = TaskState[result.state]?.toLowerCase().replace("_", " ") ?? "unknown";
  if (result.state === TaskState.FINISHED) return `finished, exit ${result.exitStatus}`;
  const error = result.errorMessage === "" ? "" : `: ${result.errorMessage}`;
  return result.signal === "" ? `${state}${error}` : `${state} by ${result.signal}${error}`;
}
