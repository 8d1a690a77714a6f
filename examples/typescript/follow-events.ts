/**
 * Follows a task's life on a drce node: prints each of its state changes as the node
 * publishes them (`SEQ<TAB>ID<TAB>STATE`, from the first one the node kept), and ends once
 * the task is done, with its exit status. Uses the generated TaskService client that
 * `drce/client` exposes, for the calls its typed layer does not wrap.
 *
 *   node --import tsx follow-events.ts nightly
 *
 * The node is $DRCE_SERVER (default http://127.0.0.1:8470); $DRCE_TOKEN is its token.
 */
import { callErrorFrom, createDrceClient, TaskState } from "drce/client";

const task = process.argv[2] ?? "";
if (task === "") throw new Error("usage: follow-events.ts TASK");

const finalStates = new Set([TaskState.FINISHED, TaskState.TERMINATED, TaskState.EXPIRED, TaskState.NOT_SET, TaskState.CRASHED]);
const drce = createDrceClient({ server: process.env["DRCE_SERVER"] ?? "http://127.0.0.1:8470", token: process.env["DRCE_TOKEN"] ?? "" });
const stop = new AbortController();
try {
  for await (const { event } of drce.tasks.watchTaskEvents({ task, fromStart: true }, { signal: stop.signal })) {
    if (event === undefined) continue;
    process.stdout.write(`${event.seq}\t${event.id}\t${TaskState[event.state]}\n`);
    if (finalStates.has(event.state)) {
      process.stdout.write(`exit=${event.exitStatus}\n`);
      break;
    }
  }
} catch (error) {
  // The raw client's failures are ConnectErrors; callErrorFrom gives them the legacy code.
  const failure = callErrorFrom(error);
  process.stderr.write(`drce: ${failure.message} (legacy error ${failure.legacyCode})\n`);
  process.exitCode = 125;
} finally {
  stop.abort();
  drce.close();
}
