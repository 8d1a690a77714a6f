import { TaskMode, TaskState } from "../../gen/drce/v1/task_pb.js";
import { SubmitTaskResponseSchema } from "../../gen/drce/v1/task_service_pb.js";
import { readAll, readLocalFile, reportProblem, showUsage, stateLine, summaryLine, withClient } from "./common.js";
import { UsageError } from "./errors.js";
import { ExitCode, exitCodeForResult } from "./exit-codes.js";
import type { CliIo } from "./io.js";
import { byNodeName, fanOutExitCode, nodeStateLine } from "./node-results.js";
import { commonOptions, parseOptions, splitAtCommand, taskOptions } from "./options.js";
import { isFanOut, placementFromOptions, placementOptions, placementUsage } from "./placement-options.js";
import { taskSpecFromOptions } from "./task-plan.js";
import { writeJson, writeLines } from "./output.js";
import { writeRequestedFiles } from "./result-files.js";

/** Usage of `drce submit`. */
export const submitUsage = `usage: drce submit [--async|--sync] [options] [--] COMMAND [ARGS...]

Submits a task. --async (the default) returns at once and prints
  ID<TAB>STATE            (state "new" or "queued")
--sync waits until the task is done and prints
  ID<TAB>STATE<TAB>exit=N<TAB>time=T
then exits with the task's exit status (as drce run does). The task's output is
kept on the node: read it with drce logs or drce fetch. A task fanned out over
several nodes (--all, --nodes, --target) prints one more line per node,
  NODE<TAB>STATUS<TAB>exit=N<TAB>time=T[<TAB>ERROR]
and --sync exits as drce run --all does.

Options: the task options of drce run (see drce help run), and
      --async              return at once (default)
      --sync               wait for the task and exit with its status
      --stdin-file FILE    the task's stdin, from FILE ("-": drce's own stdin)
      --server URL, --json, -h/--help as for every command
${placementUsage}

Exit status: 0 when submitted (async); with --sync as drce run; 125 refused
(state not-set) or node error; 2 usage error; 1 local file error.`;

const submitOptions = {
  ...commonOptions,
  ...taskOptions,
  ...placementOptions,
  async: { type: "boolean" },
  sync: { type: "boolean" },
  "stdin-file": { type: "string" },
} as const;

/** `drce submit`: sets a task, async by default. */
export async function submitCommand(argv: string[], io: CliIo): Promise<number> {
  const { optionArgs, command } = splitAtCommand(argv, submitOptions);
  const { values } = parseOptions(optionArgs, submitOptions);
  if (values.help === true) return showUsage(io, submitUsage);
  if (values.async === true && values.sync === true) throw new UsageError("--async and --sync exclude each other");
  const sync = values.sync === true;
  const plan = await taskSpecFromOptions(values, command, { readFile: readLocalFile, env: io.env });
  plan.spec.mode = sync ? TaskMode.SYNC : TaskMode.ASYNC;
  const placement = placementFromOptions(values);
  if (placement !== undefined) plan.spec.placement = placement;
  if (isFanOut(placement) && plan.gets.length > 0) throw new UsageError("--get reads one task's file back; it does not go with a fan-out");
  const stdinFile = values["stdin-file"];
  if (stdinFile !== undefined) plan.spec.input = stdinFile === "-" ? await readAll(io.stdin) : await readLocalFile(stdinFile);

  return withClient(values, io, async (client) => {
    const response = await client.submitTask({ task: plan.spec });
    const result = response.result;
    if (result === undefined) throw new Error("the node answered without a result");
    if (values.json === true) await writeJson(io.stdout, SubmitTaskResponseSchema, response);
    else await writeLines(io.stdout, [sync ? summaryLine(result) : stateLine(result), ...byNodeName(result.nodes).map(nodeStateLine)]);
    if (response.existing) await writeLines(io.stderr, [`drce: task ${result.id} already existed with this request; nothing new was submitted`]);
    if (!sync) {
      if (result.state === TaskState.NOT_SET) {
        await reportProblem(io, result);
        return ExitCode.NodeError;
      }
      return ExitCode.Ok;
    }
    if (result.nodes.length > 0) return fanOutExitCode(result.nodes);
    await reportProblem(io, result);
    if (plan.gets.length > 0) await writeRequestedFiles(plan.gets, result.files, io);
    return exitCodeForResult(result);
  });
}
