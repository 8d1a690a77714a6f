import { Stream } from "../../gen/drce/v1/task_pb.js";
import { StreamTaskOutputResponseSchema } from "../../gen/drce/v1/task_service_pb.js";
import { oneRef, showUsage, withClient } from "./common.js";
import { UsageError } from "./errors.js";
import type { CliIo } from "./io.js";
import { commonOptions, parseOptions } from "./options.js";
import { writeBytes, writeJson } from "./output.js";

/** Usage of `drce logs`. */
export const logsUsage = `usage: drce logs [-f] [--stdout-only|--stderr-only] [--server URL] [--json] REF

Writes a task's output from its start: its stdout to stdout, its stderr to stderr.
  -f, --follow             keep streaming until the task ends
      --stdout-only        only the task's stdout
      --stderr-only        only the task's stderr
      --json               one line of JSON per stream message

Exit status: 0 once the output is written, whatever the task's exit status (use
drce status or drce fetch for that); 3 unknown task; 125 node error.`;

const logsOptions = {
  ...commonOptions,
  follow: { type: "boolean", short: "f" },
  "stdout-only": { type: "boolean" },
  "stderr-only": { type: "boolean" },
} as const;

/** `drce logs REF`: StreamTaskOutput from offset 0. */
export async function logsCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseOptions(argv, logsOptions);
  if (values.help === true) return showUsage(io, logsUsage);
  const task = oneRef(positionals);
  if (values["stdout-only"] === true && values["stderr-only"] === true) throw new UsageError("--stdout-only and --stderr-only exclude each other");
  const wantStdout = values["stderr-only"] !== true;
  const wantStderr = values["stdout-only"] !== true;
  return withClient(values, io, async (client) => {
    for await (const message of client.streamTaskOutput({ task, follow: values.follow === true })) {
      if (values.json === true) {
        await writeJson(io.stdout, StreamTaskOutputResponseSchema, message);
        continue;
      }
      if (message.event.case !== "output") continue;
      const chunk = message.event.value;
      if (chunk.stream === Stream.STDERR ? wantStderr : wantStdout) await writeBytes(chunk.stream === Stream.STDERR ? io.stderr : io.stdout, chunk.data);
    }
    return 0;
  });
}
