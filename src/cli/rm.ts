import { Code, ConnectError } from "@connectrpc/connect";
import type { TaskSummary } from "../../gen/drce/v1/task_pb.js";
import { DeleteTaskResponseSchema } from "../../gen/drce/v1/task_service_pb.js";
import { parseDuration } from "../domain/duration.js";
import { showUsage, stateLine, withClient, type TaskServiceClient } from "./common.js";
import { describeRpcError, UsageError } from "./errors.js";
import { ExitCode } from "./exit-codes.js";
import type { CliIo } from "./io.js";
import { commonOptions, parseOptions } from "./options.js";
import { writeJson, writeLines } from "./output.js";
import { isFinalState } from "./states.js";

/** Usage of `drce rm`. */
export const rmUsage = `usage: drce rm [--server URL] [--json] REF...
       drce rm --finished [--older-than DURATION] [--server URL] [--json]

Deletes finished tasks' data on the node and prints ID<TAB>deleted for each.
A running task is refused: stop it first with drce kill. Each REF is tried, even
after one fails.
      --finished           delete every finished task (with its subtasks) instead
      --older-than D       with --finished: only those that ended at least D ago
                           (e.g. 90s, 30m, 1h, 7d)

Exit status: 0; 3 an unknown task (the others are deleted); 125 another node error
(e.g. a task is running). --finished skips tasks that are gone or still have
running subtasks, and exits 0.`;

const rmOptions = { ...commonOptions, finished: { type: "boolean" }, "older-than": { type: "string" } } as const;

/** `drce rm REF...` and `drce rm --finished [--older-than D]`: DeleteTask for each. */
export async function rmCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseOptions(argv, rmOptions);
  if (values.help === true) return showUsage(io, rmUsage);
  const olderThan = values["older-than"];
  if (olderThan !== undefined && values.finished !== true) throw new UsageError("--older-than goes with --finished");
  const ageMs = olderThan === undefined ? 0 : parseDuration(olderThan);
  if (ageMs === undefined) throw new UsageError(`--older-than ${JSON.stringify(olderThan)}: expected a duration such as 90s, 30m, 1h or 7d`);
  if (values.finished === true) {
    if (positionals.length > 0) throw new UsageError("give task ids or --finished, not both");
  } else {
    if (positionals.length === 0) throw new UsageError("a task id or alias is required (or --finished)");
    if (positionals.some((ref) => ref === "")) throw new UsageError("a task id or alias is empty");
  }
  return withClient(values, io, async (client) => {
    const remove = async (task: string): Promise<void> => {
      const response = await client.deleteTask({ task });
      if (values.json === true) await writeJson(io.stdout, DeleteTaskResponseSchema, response);
      else if (response.result !== undefined) await writeLines(io.stdout, [stateLine(response.result)]);
    };
    if (values.finished === true) return removeFinished(client, ageMs, remove);
    let code: number = ExitCode.Ok;
    for (const ref of positionals) {
      try {
        await remove(ref);
      } catch (error) {
        // A refusal about one task leaves the others to do; anything else (the node cannot be
        // reached, a wrong token) would fail them all alike and ends the command.
        if (!(error instanceof ConnectError) || (error.code !== Code.NotFound && error.code !== Code.FailedPrecondition)) throw error;
        await writeLines(io.stderr, [`drce: ${describeRpcError(error)}`]);
        code = error.code === Code.NotFound && code !== ExitCode.NodeError ? ExitCode.NotFound : ExitCode.NodeError;
      }
    }
    return code;
  });
}

/**
 * Deletes the finished trees that ended at least `ageMs` ago: roots only (deleting one
 * takes its subtasks), oldest first. A tree that vanished meanwhile, or still has a running
 * async subtask, is skipped.
 */
async function removeFinished(client: TaskServiceClient, ageMs: number, remove: (task: string) => Promise<void>): Promise<number> {
  const { tasks } = await client.listTasks({});
  const held = new Set(tasks.map((task) => task.id));
  const cutoff = Date.now() - ageMs;
  const roots = tasks
    .filter((task: TaskSummary) => (task.parentId === "" || !held.has(task.parentId)) && isFinalState(task.state) && Number(task.finishedAtMs) <= cutoff)
    .sort((a, b) => Number(a.finishedAtMs - b.finishedAtMs));
  for (const task of roots) {
    try {
      await remove(task.id);
    } catch (error) {
      if (error instanceof ConnectError && (error.code === Code.NotFound || error.code === Code.FailedPrecondition)) continue;
      throw error;
    }
  }
  return ExitCode.Ok;
}
