import { TerminateAlgorithm, TerminateTaskResponseSchema } from "../../gen/drce/v1/task_service_pb.js";
import { oneRef, showUsage, stateLine, withClient } from "./common.js";
import { ExitCode } from "./exit-codes.js";
import type { CliIo } from "./io.js";
import { parseSignal, parseUint } from "./option-values.js";
import { commonOptions, parseOptions } from "./options.js";
import { writeJson, writeLines } from "./output.js";

/** Usage of `drce kill`. */
export const killUsage = `usage: drce kill [--signal SIG] [--delay MS] [--repeat N] [--cleanup] [--server URL] [--json] REF

Terminates a task's whole process group and prints ID<TAB>STATE.
Without --signal: SIGTERM, then SIGKILL after --delay ms, up to --repeat times.
  -s, --signal SIG         send only SIG (TERM, KILL, SIGINT, 9, ...) every try
      --delay MS           milliseconds between tries (node default 1000)
      --repeat N           number of tries (node default 3)
      --cleanup            delete the task's data once it stopped

Exit status: 0; 3 unknown task; 125 node error, the task was not running, or
processes escaped termination (their pids are printed on stderr).`;

const killOptions = {
  ...commonOptions,
  signal: { type: "string", short: "s" },
  delay: { type: "string" },
  repeat: { type: "string" },
  cleanup: { type: "boolean" },
} as const;

/** `drce kill REF`: TerminateTask. */
export async function killCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseOptions(argv, killOptions);
  if (values.help === true) return showUsage(io, killUsage);
  const task = oneRef(positionals);
  const signal = values.signal === undefined ? undefined : parseSignal(values.signal);
  const request = {
    task,
    alg: signal === undefined ? TerminateAlgorithm.TERM_THEN_KILL : TerminateAlgorithm.SIGNAL,
    signal: signal ?? 0,
    delayMs: values.delay === undefined ? 0 : parseUint(values.delay, "--delay"),
    repeat: values.repeat === undefined ? 0 : parseUint(values.repeat, "--repeat"),
    cleanup: values.cleanup === true,
  };
  return withClient(values, io, async (client) => {
    const response = await client.terminateTask(request);
    const result = response.result;
    if (values.json === true) await writeJson(io.stdout, TerminateTaskResponseSchema, response);
    else if (result !== undefined) await writeLines(io.stdout, [stateLine(result)]);
    if (result !== undefined && result.escapedPids.length > 0) {
      await writeLines(io.stderr, [`drce: processes of task ${result.id} survived termination: ${result.escapedPids.join(" ")}`]);
      return ExitCode.NodeError;
    }
    return ExitCode.Ok;
  });
}
