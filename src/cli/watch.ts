import type { TaskEvent } from "../../gen/drce/v1/task_pb.js";
import { WatchTaskEventsResponseSchema } from "../../gen/drce/v1/task_service_pb.js";
import { noPositionals, showUsage, withClient } from "./common.js";
import { UsageError } from "./errors.js";
import type { CliIo } from "./io.js";
import { commonOptions, parseOptions } from "./options.js";
import { writeJson, writeLines } from "./output.js";
import { hasExitStatus, stateName } from "./states.js";

/** Usage of `drce watch`. */
export const watchUsage = `usage: drce watch [--after SEQ | --from-start] [--task REF] [--server URL] [--json]

Prints task state changes as they happen, one line each:
  SEQ<TAB>ID<TAB>STATE<TAB>EXIT
(EXIT is "-" until the task has one), until interrupted.
      --after SEQ          resume after event SEQ (default: only new events)
      --from-start         first replay every event the node kept
      --task REF           only the events of this task id or alias

Exit status: 130 when interrupted; 125 node error.`;

const watchOptions = {
  ...commonOptions,
  after: { type: "string" },
  "from-start": { type: "boolean" },
  task: { type: "string" },
} as const;

/** One `drce watch` line. */
export function eventLine(event: TaskEvent): string {
  return `${event.seq}\t${event.id}\t${stateName(event.state)}\t${hasExitStatus(event.state) ? event.exitStatus : "-"}`;
}

/** `drce watch`: WatchTaskEvents. */
export async function watchCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseOptions(argv, watchOptions);
  if (values.help === true) return showUsage(io, watchUsage);
  noPositionals(positionals);
  if (values.after !== undefined && !/^\d+$/.test(values.after)) throw new UsageError(`--after ${values.after}: expected a sequence number`);
  if (values.after !== undefined && values["from-start"] === true) throw new UsageError("--after and --from-start exclude each other");
  const request = { afterSeq: BigInt(values.after ?? 0), fromStart: values["from-start"] === true, task: values.task ?? "" };
  return withClient(values, io, async (client) => {
    for await (const message of client.watchTaskEvents(request)) {
      if (values.json === true) await writeJson(io.stdout, WatchTaskEventsResponseSchema, message);
      else if (message.event !== undefined) await writeLines(io.stdout, [eventLine(message.event)]);
    }
    return 0;
  });
}
