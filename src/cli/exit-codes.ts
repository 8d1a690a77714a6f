import { constants } from "node:os";
import { Code, ConnectError } from "@connectrpc/connect";
import { TaskState, type TaskResult } from "../../gen/drce/v1/task_pb.js";
import { ExitCode } from "./exit-code-values.js";

export { ExitCode } from "./exit-code-values.js";

/** The exit code of a task result, per the table of {@link ExitCode}. */
export function exitCodeForResult(result: Pick<TaskResult, "state" | "exitStatus" | "signal">): number {
  switch (result.state) {
    case TaskState.FINISHED:
      return result.exitStatus >= 0 && result.exitStatus <= 255 ? result.exitStatus : ExitCode.NodeError;
    case TaskState.EXPIRED:
      return ExitCode.Expired;
    case TaskState.TERMINATED: {
      const number = signalNumber(result.signal);
      if (number !== undefined) return 128 + number;
      if (result.exitStatus > 128 && result.exitStatus <= 255) return result.exitStatus;
      return 128 + constants.signals.SIGTERM;
    }
    default:
      return ExitCode.NodeError;
  }
}

/** The exit code for a signal drce itself received (130 for SIGINT). */
export function exitCodeForSignal(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? constants.signals.SIGTERM);
}

/** The exit code for an RPC error: 3 for NotFound, else 125. */
export function exitCodeForError(error: ConnectError): number {
  return error.code === Code.NotFound ? ExitCode.NotFound : ExitCode.NodeError;
}

function signalNumber(name: string): number | undefined {
  if (name === "") return undefined;
  const key = (name.startsWith("SIG") ? name : `SIG${name}`).toUpperCase() as NodeJS.Signals;
  return constants.signals[key];
}
