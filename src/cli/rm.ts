import { DeleteTaskResponseSchema } from "../../gen/drce/v1/task_service_pb.js";
import { oneRef, showUsage, stateLine, withClient } from "./common.js";
import type { CliIo } from "./io.js";
import { commonOptions, parseOptions } from "./options.js";
import { writeJson, writeLines } from "./output.js";

/** Usage of `drce rm`. */
export const rmUsage = `usage: drce rm [--server URL] [--json] REF

Deletes a finished task's data on the node and prints ID<TAB>deleted.
A running task is refused: stop it first with drce kill.

Exit status: 0; 3 unknown task; 125 node error (e.g. the task is running).`;

/** `drce rm REF`: DeleteTask. */
export async function rmCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseOptions(argv, commonOptions);
  if (values.help === true) return showUsage(io, rmUsage);
  const task = oneRef(positionals);
  return withClient(values, io, async (client) => {
    const response = await client.deleteTask({ task });
    if (values.json === true) await writeJson(io.stdout, DeleteTaskResponseSchema, response);
    else if (response.result !== undefined) await writeLines(io.stdout, [stateLine(response.result)]);
    return 0;
  });
}
