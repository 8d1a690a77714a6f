import { DrceError, ErrorCode } from "../domain/errors.js";
import { isFinalState, stateNames } from "../domain/states.js";
import type { TaskStatus } from "../domain/task.js";

/**
 * Names why a call to a node failed: the first system error code of its cause chain
 * ("connection refused" for ECONNREFUSED), else the error's message.
 */
export function failureReason(error: unknown): string {
  for (let cause: unknown = error, depth = 0; cause !== undefined && cause !== null && depth < 8; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string") return code === "ECONNREFUSED" ? "connection refused" : code;
    cause = (cause as { cause?: unknown }).cause;
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * The error of a call to a node that did not answer (legacy 5000), naming the node, why the
 * call failed and what was last known of the task there (`last`, when any state was seen).
 */
export function unreachableError(node: string, id: string, error: unknown, last: TaskStatus | undefined): DrceError {
  const known = last === undefined ? "no state of it is known yet" : `its last known state is ${stateNames[last.state] ?? last.state}${isFinalState(last.state) ? ` (exit status ${last.exitStatus})` : ""}`;
  return new DrceError("unavailable", `node ${node}, which holds task ${id}, is unreachable (${failureReason(error)}); ${known}`, { legacyCode: ErrorCode.NoTargetNode, cause: error });
}
