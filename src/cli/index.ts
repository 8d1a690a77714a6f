/**
 * The `drce` command: dispatches to its subcommands and maps failures to exit codes once.
 *
 * Exit codes (see exit-codes.ts for the full table):
 *   0      success                        1    local file error
 *   2      usage error                    3    unknown task id or alias (NotFound)
 *   124    task expired                   125  node/RPC error, task refused or crashed
 *   128+N  task terminated by signal N    130/143  drce interrupted (SIGINT/SIGTERM)
 *   141    stdout closed by its reader
 *   run, submit --sync and fetch otherwise exit with the task's own exit status.
 */
import { packageVersion } from "../version.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { LocalError, UsageError } from "./errors.js";
import { ExitCode, exitCodeForError } from "./exit-codes.js";
import { completionCommand, completionUsage } from "./completion.js";
import { fetchCommand, fetchUsage } from "./fetch.js";
import { processIo, type CliIo } from "./io.js";
import { killCommand, killUsage } from "./kill.js";
import { logsCommand, logsUsage } from "./logs.js";
import { lsCommand, lsUsage } from "./ls.js";
import { nodeCommand, nodeUsage } from "./node.js";
import { nodesCommand, nodesUsage } from "./nodes.js";
import { rmCommand, rmUsage } from "./rm.js";
import { runCommand, runUsage } from "./run.js";
import { statusCommand, statusUsage } from "./status.js";
import { submitCommand, submitUsage } from "./submit.js";
import { watchCommand, watchUsage } from "./watch.js";

export type { CliIo } from "./io.js";

interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly main: (argv: string[], io: CliIo) => Promise<number>;
}

const serveUsageHint = "usage: drce serve [options]   (drce serve --help lists them)";

const commands: Readonly<Record<string, Command>> = {
  serve: {
    summary: "start a node",
    usage: serveUsageHint,
    main: async (argv, io) => {
      const { serve } = await import("./serve.js");
      return serve(argv, io);
    },
  },
  run: { summary: "run a command attached: live output, stdin, exit status", usage: runUsage, main: runCommand },
  submit: { summary: "submit a task (async by default) and print its id", usage: submitUsage, main: submitCommand },
  status: { summary: "show a task's state", usage: statusUsage, main: statusCommand },
  logs: { summary: "write a task's output (-f to follow)", usage: logsUsage, main: logsCommand },
  kill: { summary: "terminate a task's process group", usage: killUsage, main: killCommand },
  fetch: { summary: "get a task's output and exit status (and delete it)", usage: fetchUsage, main: fetchCommand },
  rm: { summary: "delete a finished task's data", usage: rmUsage, main: rmCommand },
  ls: { summary: "list the node's tasks", usage: lsUsage, main: lsCommand },
  watch: { summary: "print task state changes as they happen", usage: watchUsage, main: watchCommand },
  node: { summary: "node administration: info, usage, stats, tasks, reports", usage: nodeUsage, main: nodeCommand },
  nodes: { summary: "list the data nodes: state, load, free slots, labels, host facts", usage: nodesUsage, main: nodesCommand },
  completion: { summary: "print a shell completion script (bash, zsh)", usage: completionUsage, main: (argv, io) => completionCommand(argv, io, commands) },
};

/** The top-level help text. */
export function mainUsage(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  return [
    "usage: drce [--server URL] [--json] COMMAND [ARGS...]",
    "",
    "Runs and manages commands on a drce node.",
    "",
    "Commands:",
    ...Object.entries(commands).map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`),
    `  ${"help".padEnd(width)}  show help (drce help COMMAND)`,
    "",
    "Every client command takes --server URL (default $DRCE_SERVER or http://127.0.0.1:8470)",
    "and --json (print the reply messages as JSON). --token T or --token-file FILE (else",
    "$DRCE_TOKEN) is sent as a bearer token. --connect-timeout SEC (default 10; 0: none) bounds",
    "the wait for a node to answer a new connection.",
    "For an https:// node: --cacert FILE (CA to trust), --cert FILE --cert-key FILE (client",
    "certificate for mTLS), or $DRCE_CACERT, $DRCE_CERT, $DRCE_CERT_KEY.",
    "A task is named by its id or its alias.",
    "",
    "Exit status: run, submit --sync and fetch exit with the task's status; otherwise 0.",
    "1 local file error, 2 usage error, 3 unknown task, 124 task expired, 125 node error",
    "(unreachable, no answer, not a drce node, refused) or task refused/crashed, 128+N task",
    "terminated by signal N, 130 interrupted.",
  ].join("\n");
}

/** The version in package.json. */
export function version(): string {
  return packageVersion();
}

// Options that may come before the command name and belong to it.
const globalWithValue = new Set(["--server", "--token", "--token-file", "--connect-timeout"]);
const globalFlags = new Set(["--json"]);

/**
 * Runs the `drce` command line (without the node and script words) and returns the exit
 * code. Failures are written to io.stderr, never thrown.
 */
export async function runCli(argv: string[], io: CliIo = processIo()): Promise<number> {
  const globals: string[] = [];
  let rest = [...argv];
  while (rest.length > 0 && (rest[0] ?? "").startsWith("-")) {
    const word = rest[0] ?? "";
    const name = word.split("=")[0] ?? "";
    if (word === "--version" || word === "-V") return print(io, version());
    if (word === "--help" || word === "-h") return print(io, mainUsage());
    if (globalWithValue.has(name) && word.includes("=")) globals.push(word), (rest = rest.slice(1));
    else if (globalWithValue.has(name) && rest.length > 1) globals.push(word, rest[1] ?? ""), (rest = rest.slice(2));
    else if (globalFlags.has(word)) globals.push(word), (rest = rest.slice(1));
    else return usageFailure(io, "", `unknown option ${word}`);
  }
  const [name, ...args] = rest;
  if (name === undefined) {
    await print(io, mainUsage(), io.stderr);
    return ExitCode.Usage;
  }
  if (name === "help") return help(io, args[0]);
  if (name === "version") return print(io, version());
  const command = commands[name];
  if (command === undefined) return usageFailure(io, "", `unknown command ${JSON.stringify(name)}`);
  // A reader that goes away (`drce logs x | head -1`) makes stdout fail with EPIPE: end
  // quietly with 141, as a program killed by SIGPIPE would, instead of crashing.
  const onOutputError = (error: NodeJS.ErrnoException): void => {
    if (error.code !== "EPIPE") throw error;
  };
  io.stdout.on("error", onOutputError);
  try {
    return await command.main([...globals, ...args], io);
  } catch (error) {
    return reportFailure(io, name, error);
  } finally {
    io.stdout.off("error", onOutputError);
  }
}

async function help(io: CliIo, topic: string | undefined): Promise<number> {
  if (topic === undefined) return print(io, mainUsage());
  if (topic === "serve") return commands["serve"]?.main(["--help"], io) ?? 0;
  const command = commands[topic];
  if (command === undefined) return usageFailure(io, "", `no help for ${JSON.stringify(topic)}: unknown command`);
  return print(io, command.usage);
}

async function print(io: CliIo, text: string, stream: NodeJS.WritableStream = io.stdout): Promise<number> {
  stream.write(`${text}\n`);
  return ExitCode.Ok;
}

async function usageFailure(io: CliIo, command: string, message: string): Promise<number> {
  const prefix = command === "" ? "drce" : `drce ${command}`;
  io.stderr.write(`${prefix}: ${message}\nTry 'drce help${command === "" ? "" : ` ${command}`}'.\n`);
  return ExitCode.Usage;
}

/** Maps a command's failure to a message on stderr and an exit code, once. */
function reportFailure(io: CliIo, command: string, error: unknown): number | Promise<number> {
  if (error instanceof UsageError) return usageFailure(io, command, error.message);
  if (error instanceof LocalError) {
    io.stderr.write(`drce: ${error.message}\n`);
    return ExitCode.LocalFailure;
  }
  if ((error as NodeJS.ErrnoException | undefined)?.code === "EPIPE") return ExitCode.BrokenPipe;
  if (error instanceof ConnectError) {
    io.stderr.write(`drce: ${codeName(error.code)}: ${describeConnectError(error)}\n`);
    return exitCodeForError(error);
  }
  io.stderr.write(`drce: ${error instanceof Error ? error.message : String(error)}\n`);
  return ExitCode.NodeError;
}

/** "not_found", "unavailable", ...: the Connect protocol's names of the codes. */
function codeName(code: Code): string {
  return (Code[code] ?? String(code)).replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

function describeConnectError(error: ConnectError): string {
  const legacy = error.metadata.get("drce-error-code");
  const message = error.rawMessage || "(no message)";
  return legacy === null || legacy === "" || legacy === "0" ? message : `${message} (error ${legacy})`;
}
