import { FetchTaskResponseSchema } from "../../gen/drce/v1/task_service_pb.js";
import { oneRef, reportProblem, showUsage, summaryLine, withClient } from "./common.js";
import { exitCodeForResult } from "./exit-codes.js";
import type { CliIo } from "./io.js";
import { commonOptions, parseOptions } from "./options.js";
import { writeJson, writeLines } from "./output.js";
import { createNodeOutput } from "./node-output.js";
import { fanOutExitCode, nodeSummaryLines } from "./node-results.js";
import { createOutputWriter } from "./output-stream.js";
import { writeFilesUnder } from "./result-files.js";

/** Usage of `drce fetch`. */
export const fetchUsage = `usage: drce fetch [--keep] [--files-dir DIR] [--verbose] [--server URL] [--json] REF

Gets a task's result: writes its stdout to stdout and its stderr to stderr, and
exits with its exit status. The task's data is deleted on the node afterwards
unless --keep is given. Output is streamed, whatever its size; where the node kept
only the head and the tail of a stream, a line on stderr says what is missing.
--json prints the FetchTask reply, whose output is at most the node's
--inline-output-bytes per stream (stdoutMoreAvailable says more is kept).
      --keep               keep the task's data on the node
      --files-dir DIR      write the files the task returned (--get) under DIR;
                           names that would leave DIR are skipped
  -v, --verbose            a one-line summary on stderr

Exit status: as drce run (the task's own status; 124 expired; 125 refused,
crashed or not finished yet; 128+N terminated); 3 unknown task.

A task fanned out over several nodes (through a manager): each line of output as
"node | line", a summary table on stderr (node, status, exit, time), and the exit
status of drce run --all (0 when every node's task exited 0).`;

const fetchOptions = {
  ...commonOptions,
  keep: { type: "boolean" },
  "files-dir": { type: "string" },
  verbose: { type: "boolean", short: "v" },
} as const;

/** `drce fetch REF`: FetchTask. */
export async function fetchCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseOptions(argv, fetchOptions);
  if (values.help === true) return showUsage(io, fetchUsage);
  const task = oneRef(positionals);
  return withClient(values, io, async (client) => {
    let fanOut = false;
    const nodeOutput = createNodeOutput({ io, prefix: true });
    if (values.json !== true) {
      // A task on several nodes has its lines marked with their node, the names aligned.
      const known = (await client.getTask({ task })).result?.nodes ?? [];
      fanOut = known.length > 0;
      nodeOutput.addNames(known.map((item) => item.node));
      // The output is streamed first, a piece at a time, so that no output of any size is
      // held here; the fetch after it brings the result and files (and deletes the task).
      const writer = createOutputWriter(io);
      for await (const message of client.streamTaskOutput({ task, follow: false })) {
        const event = message.event;
        if (event.case === "output") await (fanOut ? nodeOutput.chunk(message.node ?? "", event.value) : writer.chunk(event.value));
        else if (event.case === "gap") await (fanOut ? nodeOutput.gap(message.node ?? "", event.value) : writer.gap(event.value));
        else if (event.case === "nodeResult" && fanOut) await nodeOutput.endNode(event.value.node);
      }
      await nodeOutput.end();
    }
    const response = await client.fetchTask({ task, delete: values.keep !== true });
    const result = response.result;
    if (result === undefined) throw new Error("the node answered without a result");
    // The reply's output is at most --inline-output-bytes per stream; --json shows it with
    // stdout_more_available/stderr_more_available, and `drce logs` reads all of it.
    if (values.json === true) await writeJson(io.stdout, FetchTaskResponseSchema, response);
    const filesDir = values["files-dir"];
    if (filesDir !== undefined) await writeFilesUnder(filesDir, result.files, io);
    if (values.json === true && (result.stdoutMoreAvailable || result.stderrMoreAvailable)) {
      await writeLines(io.stderr, [`drce: the reply carries the first bytes of the output of task ${result.id}; drce logs ${result.id} writes all of it`]);
    }
    if (values.json === true && (result.stdoutTruncated || result.stderrTruncated)) {
      await writeLines(io.stderr, [`drce: the output of task ${result.id} exceeded the node's cap; only its head and tail were kept`]);
    }
    if (values.verbose === true) await writeLines(io.stderr, [`drce: ${summaryLine(result).replaceAll("\t", " ")}`]);
    if (result.nodes.length > 0) {
      if (values.json !== true) await writeLines(io.stderr, nodeSummaryLines(result.nodes));
      return fanOutExitCode(result.nodes);
    }
    await reportProblem(io, result);
    return exitCodeForResult(result);
  });
}
