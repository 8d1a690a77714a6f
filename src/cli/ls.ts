import type { TaskState, TaskSummary } from "../../gen/drce/v1/task_pb.js";
import { ListTasksResponseSchema } from "../../gen/drce/v1/task_service_pb.js";
import { noPositionals, showUsage, withClient } from "./common.js";
import { UsageError } from "./errors.js";
import type { CliIo } from "./io.js";
import { commonOptions, parseOptions } from "./options.js";
import { formatTable, formatTime, writeJson, writeLines } from "./output.js";
import { allStateNames, hasExitStatus, modeName, parseStateName, stateName } from "./states.js";

/** Usage of `drce ls`. */
export const lsUsage = `usage: drce ls [--state S[,S...]]... [--server URL] [--json]

Lists the node's tasks, newest first, as a table:
  ID  ALIAS  STATE  MODE  STARTED  EXIT  COMMAND
STARTED is UTC (the submission time while not started); "-" marks an empty cell.
      --state S            only tasks in state S (repeatable, or comma-separated):
                           ${allStateNames().join(", ")}

Exit status: 0; 2 unknown state; 125 node error.`;

const lsOptions = { ...commonOptions, state: { type: "string", multiple: true } } as const;

/** Reads `--state` values (each possibly comma-separated) into proto states. */
export function parseStateFilter(values: readonly string[]): TaskState[] {
  const states: TaskState[] = [];
  for (const word of values.flatMap((v) => v.split(",")).map((w) => w.trim()).filter((w) => w !== "")) {
    const state = parseStateName(word);
    if (state === undefined) throw new UsageError(`--state ${word}: unknown state (one of ${allStateNames().join(", ")})`);
    states.push(state);
  }
  return states;
}

/** The rows of the `drce ls` table, header first. */
export function listRows(tasks: readonly TaskSummary[]): string[][] {
  return [
    ["ID", "ALIAS", "STATE", "MODE", "STARTED", "EXIT", "COMMAND"],
    ...tasks.map((t) => [
      t.id,
      t.alias || "-",
      stateName(t.state),
      modeName(t.mode),
      formatTime(t.startedAtMs),
      hasExitStatus(t.state) ? String(t.exitStatus) : "-",
      t.command.replace(/\s+/g, " "),
    ]),
  ];
}

/** `drce ls`: ListTasks. */
export async function lsCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseOptions(argv, lsOptions);
  if (values.help === true) return showUsage(io, lsUsage);
  noPositionals(positionals);
  const states = parseStateFilter(values.state ?? []);
  return withClient(values, io, async (client) => {
    const response = await client.listTasks({ states });
    if (values.json === true) await writeJson(io.stdout, ListTasksResponseSchema, response);
    else await writeLines(io.stdout, formatTable(listRows(response.tasks)));
    return 0;
  });
}
