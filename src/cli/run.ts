/**
 * `drce run`: runs a command on the node attached, like ssh or rexec: output streams to
 * this process's stdout and stderr as it comes, stdin is forwarded, Ctrl-C stops the
 * remote task, and drce exits with the task's exit code.
 *
 * Exit codes of `drce run`:
 *
 * | code    | when                                                                          |
 * |---------|-------------------------------------------------------------------------------|
 * | 0..255  | the task finished: its exit status (a shell's 128+N when signal N killed it)  |
 * | 124     | the task expired (--timeout / --time-max passed, state EXPIRED)               |
 * | 125     | the node refused the task (state NOT_SET), it crashed, or the RPC failed      |
 * | 128+N   | the task was terminated (e.g. `drce kill`) with signal N; 143 if not known    |
 * | 130     | drce got SIGINT (Ctrl-C): the call was cancelled, which terminates the task   |
 * | 143     | drce got SIGTERM: likewise                                                    |
 * | 1       | a local file (--file @PATH, --key) could not be read or a --get file written  |
 * | 2       | usage error                                                                   |
 * | 3       | (not for run in practice) an unknown task id, RPC code NotFound               |
 *
 * Through a manager, `--all`, `--nodes a,b` or `--target k=v` run the task on several nodes
 * (a fan-out): each line of output is written as `node | line` as it arrives (`--no-prefix`
 * writes the bytes as they come), a summary table (node, status, exit, time) goes to stderr
 * at the end, and drce exits 0 only when every node's task exited 0; otherwise with the code
 * of the first node, in name order, that did not: its task's exit code as above when it ran
 * there, else 125 (failed without a result, timed out, unreachable, not started). stdin, when
 * forwarded, is read to its end first and given to every node.
 *
 * stdin: when drce's stdin is not a terminal (a pipe, a file, /dev/null), the task is
 * submitted with open_stdin and drce's stdin is streamed to it through SendTaskInput
 * until EOF, which closes the task's stdin. When stdin is a terminal nothing is
 * forwarded and the task's stdin is closed at once: there is no remote terminal, so an
 * interactive program could not work anyway (as with `ssh -n`). `-n`/`--no-stdin` does
 * the same for a non-terminal stdin, and so does a stdin of `/dev/null` or an empty file
 * (the task reads EOF at once, as it would have from the forwarded stream).
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Stream, type NodeResult, type TaskResult } from "../../gen/drce/v1/task_pb.js";
import { RunTaskResponseSchema, SendTaskInputRequestSchema, type SendTaskInputRequest } from "../../gen/drce/v1/task_service_pb.js";
import { readAll, readLocalFile, reportProblem, showUsage, withClient, type TaskServiceClient } from "./common.js";
import { UsageError } from "./errors.js";
import { exitCodeForResult, exitCodeForSignal } from "./exit-codes.js";
import type { CliIo } from "./io.js";
import { commonOptions, parseOptions, splitAtCommand, taskOptions, taskSpecFromOptions, type TaskPlan } from "./options.js";
import { createNodeOutput, type NodeOutput } from "./node-output.js";
import { fanOutExitCode, nodeSummaryLines } from "./node-results.js";
import { writeBytes, writeJson, writeLines } from "./output.js";
import { gapWarning } from "./output-stream.js";
import { writeRequestedFiles } from "./result-files.js";
import { isFanOut, placementFromOptions, placementOptions, placementUsage } from "./placement-options.js";
import { hasExitStatus } from "./states.js";
import { holdsNothing } from "./empty-stdin.js";
import { readChunks } from "./stdin.js";

/** Usage of `drce run`. */
export const runUsage = `usage: drce run [options] [--] COMMAND [ARGS...]
       drce run [options] -c 'SHELL COMMAND LINE'

Runs a command on the node and streams its output; exits with its exit status.
One COMMAND word is a shell command line ("make -j4 && make test"); several words
are an argument vector run without a shell. Options end at the first word that is
not an option, or at --.

Task options (also for submit):
  -c, --command LINE       shell command line to run
      --id ID              task id (default: the node chooses one)
      --alias NAME         task alias, usable wherever an id is
  -e, --env NAME=VALUE     add an environment variable (repeatable; NAME alone copies
                           the local value)
      --cwd DIR            working directory on the node (default: the task's own)
      --shell PROGRAM      program that runs a command line (default "/bin/sh -c")
      --timeout SEC        time limit in seconds (state expired when passed)
      --time-max MS        time limit in milliseconds
      --ttl MS             a task still queued after MS never starts
      --file NAME=@PATH    create NAME in the working directory from local file PATH
      --file NAME=TEXT     ... or with TEXT as its content (repeatable)
      --get NAME[:PATH]    read NAME back after the command and write it to local PATH
                           (default: NAME's base name in the current directory)
      --cleanup            delete the task's data on the node once it is done
      --ssh USER@HOST[:PORT]   run over SSH instead of on the node itself
      --password-env VAR   SSH password from local environment variable VAR
      --key FILE           SSH private key (PEM) from local FILE
      --passphrase-env VAR passphrase of the key from environment variable VAR
      --fingerprint SHA256:...  pin the SSH host key
      --uid N, --gid N     run as this user/group id on the node (the node must run as root)
${placementUsage}
run options:
  -n, --no-stdin           do not forward stdin (the task's stdin is closed at once)
      --no-prefix          a fan-out's output as it comes, without "node | " before
                           each line
Common options:
      --server URL         node URL (default $DRCE_SERVER or http://127.0.0.1:8470)
      --token T, --token-file FILE
                           bearer token for a node that requires one (else $DRCE_TOKEN)
      --connect-timeout SEC
                           give up when the node does not answer within SEC (default 10)
      --json               print every stream message as a line of JSON instead of
                           raw output
  -h, --help               show this help

Exit status: the task's (0-255); 124 expired; 125 refused, crashed or node error;
128+N terminated by signal N; 130/143 interrupted by SIGINT/SIGTERM (the remote
task is terminated); 1 local file error; 2 usage error. A fan-out exits 0 when
every node's task exited 0, else with the code of the first node (in name order)
that did not, 125 when that node has no exit status (unreachable, not started).`;

const runOptions = {
  ...commonOptions,
  ...taskOptions,
  ...placementOptions,
  "no-stdin": { type: "boolean", short: "n" },
  "no-prefix": { type: "boolean" },
} as const;

/** `drce run`: see the module comment. */
export async function runCommand(argv: string[], io: CliIo): Promise<number> {
  const { optionArgs, command } = splitAtCommand(argv, runOptions);
  const { values } = parseOptions(optionArgs, runOptions);
  if (values.help === true) return showUsage(io, runUsage);
  const plan = await taskSpecFromOptions(values, command, { readFile: readLocalFile, env: io.env });
  const placement = placementFromOptions(values);
  if (placement !== undefined) plan.spec.placement = placement;
  const fanOut = isFanOut(placement);
  // Files of several nodes would land on the same local path.
  if (fanOut && plan.gets.length > 0) throw new UsageError("--get reads one task's file back; it does not go with a fan-out");
  // A stdin of /dev/null or an empty file is not forwarded: the task's stdin is closed at once,
  // which its program reads as the same EOF, and the stdin stream is never made.
  let forwardStdin = values["no-stdin"] !== true && !holdsNothing(io.stdinFd) && io.stdin.isTTY !== true;
  if (fanOut && forwardStdin) {
    // Every node gets the same stdin, so it is read whole and sent with the task.
    plan.spec.input = await readAll(io.stdin);
    forwardStdin = false;
  }
  plan.spec.openStdin = forwardStdin;
  // The node deletes a cleanup task as soon as it has sent the result, before drce could
  // read --get files back: keep it, and delete it with the fetch that reads them.
  const deleteAfterFetch = plan.gets.length > 0 && plan.spec.cleanup;
  if (deleteAfterFetch) plan.spec.cleanup = false;
  const options = { io, json: values.json === true, forwardStdin, deleteAfterFetch, fanOut, prefix: values["no-prefix"] !== true, names: placement?.nodes ?? [] };
  return withClient(values, io, (client) => attach(client, plan, options));
}

interface AttachOptions {
  readonly io: CliIo;
  readonly json: boolean;
  readonly forwardStdin: boolean;
  readonly deleteAfterFetch: boolean;
  /** The task was asked to run on several nodes. */
  readonly fanOut: boolean;
  /** A fan-out's lines carry their node's name. */
  readonly prefix: boolean;
  /** Node names known before the run (`--nodes`). */
  readonly names: readonly string[];
}

async function attach(client: TaskServiceClient, plan: TaskPlan, options: AttachOptions): Promise<number> {
  const { io, json } = options;
  const call = new AbortController();
  const input = new AbortController();
  let caught: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    caught = signal;
    // A second Ctrl-C while the call winds down gets the default behaviour: exit now.
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    input.abort();
    call.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  let taskId = "";
  let result: TaskResult | undefined;
  let inputDone: Promise<void> = Promise.resolve();
  // A fan-out asked for, or one the manager chose by its own default mode.
  let fanOut = options.fanOut;
  const nodeOutput: NodeOutput = createNodeOutput({ io, prefix: options.prefix, names: options.names, signal: call.signal });
  const nodeResults = new Map<string, NodeResult>();
  try {
    for await (const message of client.runTask({ task: plan.spec }, { signal: call.signal })) {
      if (json) await writeJson(io.stdout, RunTaskResponseSchema, message);
      const event = message.event;
      switch (event.case) {
        case "accepted":
          taskId = event.value.id;
          if (event.value.nodes.length > 0) fanOut = true;
          nodeOutput.addNames(event.value.nodes.map((item) => item.node));
          if (options.forwardStdin) inputDone = forwardInput(client, taskId, io, input.signal);
          break;
        case "output":
          if (json) break;
          if (fanOut) await nodeOutput.chunk(message.node ?? "", event.value);
          else await writeBytes(event.value.stream === Stream.STDERR ? io.stderr : io.stdout, event.value.data, call.signal);
          break;
        case "gap":
          // An attached run gets every byte; a gap comes only from a run that joined a task
          // already under way (the same id resubmitted), reading its kept copy.
          if (json) break;
          if (fanOut) await nodeOutput.gap(message.node ?? "", event.value);
          else await writeLines(io.stderr, [gapWarning(event.value)]);
          break;
        case "nodeResult":
          fanOut = true;
          nodeResults.set(event.value.node, event.value);
          if (!json) await nodeOutput.endNode(event.value.node);
          break;
        case "result":
          result = event.value;
          break;
        default:
          break;
      }
    }
  } catch (error) {
    if (caught !== undefined) {
      await writeLines(io.stderr, [`drce: ${caught === "SIGINT" ? "interrupted" : "terminated"}${taskId === "" ? "" : `; task ${taskId} is being terminated`}`]);
      return exitCodeForSignal(caught);
    }
    throw error;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    // The task has ended (or the call failed): whatever stdin still holds is not wanted.
    input.abort();
    await inputDone;
  }
  if (caught !== undefined) return exitCodeForSignal(caught);
  if (result === undefined) throw new ConnectError("the run stream ended without a result", Code.DataLoss);
  if (fanOut || result.nodes.length > 0) return fanOutEnd(io, result, nodeResults, nodeOutput, json);

  await reportProblem(io, result);
  if (plan.gets.length > 0) {
    const fetched = await client.fetchTask({ task: result.id, delete: options.deleteAfterFetch });
    if (hasExitStatus(result.state)) await writeRequestedFiles(plan.gets, fetched.result?.files ?? [], io);
  }
  return exitCodeForResult(result);
}

/**
 * Ends a fan-out: the last lines still pending, the summary table on stderr (not with
 * --json, whose messages carry it), and the exit code of {@link fanOutExitCode}. The merged
 * result's items are the reference; the node results streamed before stand in when the
 * result carries none.
 */
async function fanOutEnd(io: CliIo, result: TaskResult, streamed: ReadonlyMap<string, NodeResult>, output: NodeOutput, json: boolean): Promise<number> {
  const items = result.nodes.length > 0 ? result.nodes : [...streamed.values()];
  if (!json) {
    await output.end();
    if (items.length === 0) await reportProblem(io, result);
    else await writeLines(io.stderr, nodeSummaryLines(items));
  }
  return fanOutExitCode(items);
}

/**
 * Streams drce's stdin to the task until EOF (which closes the task's stdin) or until the
 * signal fires. A task that ended before reading its stdin is not an error, as a
 * program's unread pipe is not.
 */
async function forwardInput(client: TaskServiceClient, task: string, io: CliIo, signal: AbortSignal): Promise<void> {
  async function* requests(): AsyncGenerator<SendTaskInputRequest> {
    // The first message names the task even when stdin turns out to be empty.
    yield create(SendTaskInputRequestSchema, { task });
    for await (const data of readChunks(io.stdin, signal)) yield create(SendTaskInputRequestSchema, { data });
  }
  try {
    await client.sendTaskInput(requests(), { signal });
  } catch (error) {
    if (signal.aborted) return;
    const connectError = ConnectError.from(error);
    if (connectError.code === Code.FailedPrecondition || connectError.code === Code.NotFound) return;
    await writeLines(io.stderr, [`drce: stdin not forwarded: ${connectError.rawMessage}`]).catch(() => undefined); // stderr itself is closed: there is nowhere left to say it, and the exit code is the task's
  }
}
