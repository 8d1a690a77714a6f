import { NodeRunStatus, TaskState, type NodeResult } from "../../gen/drce/v1/task_pb.js";
import { ExitCode, exitCodeForResult } from "./exit-codes.js";
import { formatDuration, formatTable } from "./output.js";
import { hasExitStatus } from "./states.js";

/** The word the CLI shows for each node run status, as the domain names them. */
const statusNames: Readonly<Record<NodeRunStatus, string>> = {
  [NodeRunStatus.UNSPECIFIED]: "unspecified",
  [NodeRunStatus.RUNNING]: "running",
  [NodeRunStatus.FINISHED]: "finished",
  [NodeRunStatus.FAILED]: "failed",
  [NodeRunStatus.TIMED_OUT]: "timed-out",
  [NodeRunStatus.UNREACHABLE]: "unreachable",
  [NodeRunStatus.NOT_STARTED]: "not-started",
};

/** The items in node name order (code units, as the manager orders them), whatever order they came in. */
export function byNodeName(items: readonly NodeResult[]): NodeResult[] {
  return [...items].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
}

/** The name of a node run status ("finished", "unreachable", ...). */
export function nodeStatusName(status: NodeRunStatus): string {
  return statusNames[status] ?? `status-${status}`;
}

/** A node's exit status as a column shows it: the number once the task has one there, else "-". */
function exitCell(item: NodeResult): string {
  const result = item.result;
  return result !== undefined && hasExitStatus(result.state) ? String(result.exitStatus) : "-";
}

/** Why a node's part did not succeed, in words, or "" when it ran to its end. */
export function nodeProblem(item: NodeResult): string {
  if (item.errorMessage !== "") return item.errorCode === 0 ? item.errorMessage : `${item.errorMessage} (error ${item.errorCode})`;
  const result = item.result;
  if (result === undefined || result.errorCode === 0) return result?.state === TaskState.TERMINATED && result.signal !== "" ? `terminated by ${result.signal}` : "";
  return result.errorMessage === "" ? `error ${result.errorCode}` : `${result.errorMessage} (error ${result.errorCode})`;
}

/**
 * The summary of a fan-out, one row per node: NODE, STATUS, EXIT, TIME, and an ERROR column
 * when some node has an error to tell.
 */
export function nodeSummaryLines(unordered: readonly NodeResult[]): string[] {
  const items = byNodeName(unordered);
  const problems = items.map(nodeProblem);
  const withErrors = problems.some((problem) => problem !== "");
  const header = ["NODE", "STATUS", "EXIT", "TIME", ...(withErrors ? ["ERROR"] : [])];
  const rows = items.map((item, i) => [
    item.node,
    nodeStatusName(item.status),
    exitCell(item),
    item.result === undefined ? "-" : formatDuration(item.result.timeMs),
    ...(withErrors ? [problems[i] ?? ""] : []),
  ]);
  return formatTable([header, ...rows]);
}

/** One line per node for `submit` and `status`: NODE<TAB>STATUS<TAB>exit=N<TAB>time=T. */
export function nodeStateLine(item: NodeResult): string {
  const time = item.result === undefined ? "-" : formatDuration(item.result.timeMs);
  const problem = nodeProblem(item);
  return `${item.node}\t${nodeStatusName(item.status)}\texit=${exitCell(item)}\ttime=${time}${problem === "" ? "" : `\t${problem}`}`;
}

/** Whether a node's part counts as a success: finished there with exit status 0 and no error. */
export function nodeSucceeded(item: NodeResult): boolean {
  return item.status === NodeRunStatus.FINISHED && item.result !== undefined && item.result.exitStatus === 0 && item.result.errorCode === 0 && item.errorCode === 0;
}

/**
 * The exit code of a fan-out: 0 when every node's task exited 0; otherwise that of the first
 * node in name order that did not: its task's own code when it
 * has one there (its exit status, 124 expired, 128+N terminated), else 125 (failed without a
 * result, timed out, unreachable, not started). No node at all is 125 too.
 */
export function fanOutExitCode(items: readonly NodeResult[]): number {
  if (items.length === 0) return ExitCode.NodeError;
  const failing = byNodeName(items).find((item) => !nodeSucceeded(item));
  if (failing === undefined) return ExitCode.Ok;
  if (failing.result === undefined || failing.status === NodeRunStatus.UNREACHABLE || failing.status === NodeRunStatus.TIMED_OUT || failing.status === NodeRunStatus.NOT_STARTED) return ExitCode.NodeError;
  const code = exitCodeForResult(failing.result);
  // Exit status 0 with an error code (a file action failed): still a failure.
  return code === ExitCode.Ok ? ExitCode.NodeError : code;
}
