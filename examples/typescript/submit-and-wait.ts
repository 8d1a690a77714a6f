/**
 * Submits a task that runs on after this program's call returns, waits for it to end, then
 * writes its whole output here (streamed, never held in memory: any size works) and
 * deletes it from the node. Prints `ID<TAB>STATE` on submission and the exit status at
 * the end, on stderr.
 *
 *   node --import tsx submit-and-wait.ts nightly -- sh -c 'sleep 1; seq 3'
 *
 * The node is $DRCE_SERVER (default http://127.0.0.1:8470); $DRCE_TOKEN is its token.
 */
import { createDrceClient, TaskState } from "drce/client";

const [id = "", ...rest] = process.argv.slice(2);
const argv = rest[0] === "--" ? rest.slice(1) : rest;
if (id === "" || argv.length === 0) throw new Error("usage: submit-and-wait.ts ID -- COMMAND [ARGS...]");

const drce = createDrceClient({ server: process.env["DRCE_SERVER"] ?? "http://127.0.0.1:8470", token: process.env["DRCE_TOKEN"] ?? "" });
try {
  // Async by default: the reply comes at once, with the task new or queued.
  const { result: submitted, existing } = await drce.submit({ id, argv });
  process.stderr.write(`${submitted.id}\t${TaskState[submitted.state]}${existing ? "\t(existed already)" : ""}\n`);

  const done = await drce.wait(id);
  const { result, stdoutBytes, gaps } = await drce.fetchOutput(id, { stdout: process.stdout, stderr: process.stderr, delete: true });
  for (const gap of gaps) process.stderr.write(`[${gap.bytes} bytes of ${gap.stream} not kept by the node]\n`);
  process.stderr.write(`${result.id}\t${TaskState[done.state]}\texit=${result.exitStatus}\tstdout=${stdoutBytes} bytes\n`);
  process.exitCode = result.state === TaskState.FINISHED ? result.exitStatus : 125;
} finally {
  drce.close();
}
