/**
 * Runs a command on a drce node attached, as `drce run` does: its stdout and stderr appear
 * here as the command writes them, Ctrl-C terminates it, and this program exits with the
 * task's exit status (125 when the node refused the call).
 *
 *   node --import tsx run-live.ts -- sh -c 'echo out; echo err >&2; exit 3'
 *
 * The node is $DRCE_SERVER (default http://127.0.0.1:8470); $DRCE_TOKEN is its token.
 */
import { Code, createDrceClient, DrceCallError, TaskState } from "drce/client";

const argv = process.argv.slice(2);
if (argv[0] === "--") argv.shift();
if (argv.length === 0) throw new Error("usage: run-live.ts -- COMMAND [ARGS...]");

const drce = createDrceClient({ server: process.env["DRCE_SERVER"] ?? "http://127.0.0.1:8470", token: process.env["DRCE_TOKEN"] ?? "" });
// Aborting the run terminates the task on the node, as Ctrl-C does for `drce run`.
const interrupt = new AbortController();
process.once("SIGINT", () => interrupt.abort());

try {
  for await (const event of drce.run({ argv }, { signal: interrupt.signal })) {
    if (event.kind === "output") (event.stream === "stdout" ? process.stdout : process.stderr).write(event.data);
    if (event.kind === "gap") process.stderr.write(`[${event.bytes} bytes of ${event.stream} not kept by the node]\n`);
    if (event.kind === "result") {
      const { state, exitStatus, errorCode } = event.result;
      process.exitCode = state === TaskState.FINISHED ? exitStatus : 125;
      if (state !== TaskState.FINISHED) process.stderr.write(`task ended ${TaskState[state]} (error ${errorCode})\n`);
    }
  }
} catch (error) {
  if (!(error instanceof DrceCallError)) throw error;
  // The Connect code says what kind of failure it is; the legacy code is the DRCE protocol's number.
  process.stderr.write(`drce: ${Code[error.code]}: ${error.message} (legacy error ${error.legacyCode})\n`);
  process.exitCode = 125;
} finally {
  drce.close();
}
