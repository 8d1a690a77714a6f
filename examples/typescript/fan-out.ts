/**
 * Runs one command on every data node of a drce manager (or on the nodes carrying the labels
 * given), as `drce run --all` does: each node's output lines appear as they come, prefixed by
 * the node's name, then one line per node with how it fared; the program exits 0 only when
 * every node's command exited 0.
 *
 *   node --import tsx fan-out.ts [env=prod,os=linux] -- uname -a
 *
 * The manager is $DRCE_SERVER (default http://127.0.0.1:8470); $DRCE_TOKEN is its token.
 */
import { Code, createDrceClient, DrceCallError, NodeRunStatus, PlacementMode } from "drce/client";

const args = process.argv.slice(2);
const split = args.indexOf("--");
const selector = split > 0 ? (args[0] ?? "") : "";
const argv = split >= 0 ? args.slice(split + 1) : args;
if (argv.length === 0) throw new Error("usage: fan-out.ts [key=value,...] -- COMMAND [ARGS...]");
const labels = Object.fromEntries(selector === "" ? [] : selector.split(",").map((pair) => pair.split("=", 2) as [string, string]));

const drce = createDrceClient({ server: process.env["DRCE_SERVER"] ?? "http://127.0.0.1:8470", token: process.env["DRCE_TOKEN"] ?? "" });
// Output comes in chunks, not lines: keep each node's partial last line until the rest arrives.
const pending = new Map<string, string>();
const print = (node: string, text: string, end: boolean): void => {
  const lines = ((pending.get(node) ?? "") + text).split("\n");
  const rest = lines.pop() ?? "";
  if (end && rest !== "") lines.push(rest);
  pending.set(node, end ? "" : rest);
  for (const line of lines) process.stdout.write(`${node} | ${line}\n`);
};

let failed = false;
try {
  for await (const event of drce.run({ argv, placement: { mode: PlacementMode.ALL, labels } })) {
    if (event.kind === "output") print(event.node, Buffer.from(event.data).toString(), false);
    if (event.kind === "node-result") {
      const { node, status, result, errorMessage } = event.nodeResult;
      print(node, "", true);
      const exit = result?.exitStatus ?? -1;
      if (status !== NodeRunStatus.FINISHED || exit !== 0) failed = true;
      process.stderr.write(`${node}: ${NodeRunStatus[status]}${result === undefined ? "" : ` exit=${exit}`}${errorMessage === "" ? "" : ` (${errorMessage})`}\n`);
    }
  }
  process.exitCode = failed ? 1 : 0;
} catch (error) {
  if (!(error instanceof DrceCallError)) throw error;
  process.stderr.write(`drce: ${Code[error.code]}: ${error.message} (legacy error ${error.legacyCode})\n`);
  process.exitCode = 125;
} finally {
  drce.close();
}
