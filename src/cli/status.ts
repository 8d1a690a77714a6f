import { GetTaskResponseSchema } from "../../gen/drce/v1/task_service_pb.js";
import type { TaskResult } from "../../gen/drce/v1/task_pb.js";
import { oneRef, showUsage, withClient } from "./common.js";
import type { CliIo } from "./io.js";
import { commonOptions, parseOptions } from "./options.js";
import { formatDuration, formatTable, formatTime, writeJson, writeLines } from "./output.js";
import { byNodeName, nodeProblem, nodeStatusName } from "./node-results.js";
import { hasExitStatus, modeName, stateName } from "./states.js";

/** Usage of `drce status`. */
export const statusUsage = `usage: drce status [--extended] [--server URL] [--json] REF

Shows a task's state: id, alias, state, pid, exit status, time run, ... as
"name value" lines. REF is a task id or alias. A task fanned out over several
nodes (through a manager) has one "node:NAME STATUS exit=N time=T" row per node.
      --extended           add the usage figures (TASK_CPU, HOST_RRAM, ...)

Exit status: 0; 3 unknown task; 125 node error.`;

const statusOptions = { ...commonOptions, extended: { type: "boolean" } } as const;

/** `drce status REF`: GetTask. */
export async function statusCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseOptions(argv, statusOptions);
  if (values.help === true) return showUsage(io, statusUsage);
  const task = oneRef(positionals);
  return withClient(values, io, async (client) => {
    const response = await client.getTask({ task, extended: values.extended === true });
    if (values.json === true) await writeJson(io.stdout, GetTaskResponseSchema, response);
    else if (response.result !== undefined) await writeLines(io.stdout, formatTable(statusRows(response.result)));
    return 0;
  });
}

/** The `name value` rows `drce status` shows for a result. */
export function statusRows(result: TaskResult): string[][] {
  const rows: string[][] = [
    ["id", result.id],
    ["alias", result.alias || "-"],
    ["state", stateName(result.state)],
    ["pid", result.pid === 0 ? "-" : String(result.pid)],
    ["exit", hasExitStatus(result.state) ? String(result.exitStatus) : "-"],
  ];
  if (result.signal !== "") rows.push(["signal", result.signal]);
  rows.push(
    ["time", formatDuration(result.timeMs)],
    ["mode", modeName(result.mode)],
    ["started", formatTime(result.startedAtMs)],
    ["finished", formatTime(result.finishedAtMs)],
    ["stdout", `${result.stdoutSize} bytes${result.stdoutTruncated ? " (truncated)" : ""}`],
    ["stderr", `${result.stderrSize} bytes${result.stderrTruncated ? " (truncated)" : ""}`],
  );
  if (result.node !== "" || result.host !== "") rows.push(["node", `${result.node} (${result.host}:${result.port})`]);
  if (result.errorCode !== 0) rows.push(["error", `${result.errorCode} ${result.errorMessage}`.trim()]);
  if (result.parentId !== "") rows.push(["parent", result.parentId]);
  if (result.escapedPids.length > 0) rows.push(["escaped", result.escapedPids.join(",")]);
  for (const sub of result.subtasks) rows.push(["subtask", `${sub.id} ${stateName(sub.state)}`]);
  for (const item of byNodeName(result.nodes)) {
    const exit = item.result !== undefined && hasExitStatus(item.result.state) ? String(item.result.exitStatus) : "-";
    const time = item.result === undefined ? "-" : formatDuration(item.result.timeMs);
    const problem = nodeProblem(item);
    rows.push([`node:${item.node}`, `${nodeStatusName(item.status)} exit=${exit} time=${time}${problem === "" ? "" : ` ${problem}`}`]);
  }
  for (const name of Object.keys(result.fields).sort()) rows.push([name, formatFigure(result.fields[name] ?? 0)]);
  return rows;
}

function formatFigure(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}
