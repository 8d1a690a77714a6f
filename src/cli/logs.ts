import { StreamTaskOutputResponseSchema } from "../../gen/drce/v1/task_service_pb.js";
import { oneRef, showUsage, withClient } from "./common.js";
import { UsageError } from "./errors.js";
import type { CliIo } from "./io.js";
import { commonOptions, parseOptions } from "./options.js";
import { writeJson } from "./output.js";
import { createOutputWriter } from "./output-stream.js";

/** Usage of `drce logs`. */
export const logsUsage = `usage: drce logs [-f] [--stdout-only|--stderr-only] [--server URL] [--json] REF

Writes a task's output from its start: its stdout to stdout, its stderr to stderr.
Where the node kept only the head and the tail of a stream (--max-output-bytes), a
line on stderr says how many bytes are missing, and from which offset.
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
    const writer = createOutputWriter(io, { stdout: wantStdout, stderr: wantStderr });
    for await (const message of client.streamTaskOutput({ task, follow: values.follow === true })) {
      if (values.json === true) {
        await writeJson(io.stdout, StreamTaskOutputResponseSchema, message);
        continue;
      }
      if (message.event.case === "output") await writer.chunk(message.event.value);
      // Where the node kept only head and tail, the warning stands where the bytes are missing.
      else if (message.event.case === "gap") await writer.gap(message.event.value);
    }
    return 0;
  });
}
