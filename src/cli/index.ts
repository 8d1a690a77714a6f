/**
 * The `drce` command: dispatches to its subcommands and maps failures to exit codes once.
 *
 * Exit codes (see exit-code-values.ts for the full table):
 *   0      success                        1    local file error
 *   2      usage error                    3    unknown task id or alias (NotFound)
 *   124    task expired                   125  node/RPC error, task refused or crashed
 *   128+N  task terminated by signal N    130/143  drce interrupted (SIGINT/SIGTERM)
 *   141    stdout closed by its reader
 *   run, submit --sync and fetch otherwise exit with the task's own exit status.
 */
import { packageVersion } from "../version.js";
import { ExitCode } from "./exit-code-values.js";
import type { ClientCommandName, LoadedCommand } from "./client-commands.js";
import { processIo, type CliIo } from "./io.js";
import { usePlainHeaders } from "./plain-headers.js";
import { usageFailure } from "./usage-failure.js";

export type { CliIo } from "./io.js";

/** A command's module once loaded, and what reports its failures (from the same build, whose error classes it knows). */
interface Command extends LoadedCommand {
  readonly report: (io: CliIo, command: string, error: unknown) => number | Promise<number>;
}

/**
 * A command of the table: its one-line summary, and the import of its module. Each module
 * is loaded only when its command runs (or its help is asked for), so that `drce --version`
 * or `drce help` load none of Connect, protobuf and the generated descriptors (which build
 * themselves when imported), and `drce run` not what `drce node` needs.
 */
interface CommandEntry {
  readonly summary: string;
  readonly load: () => Promise<Command>;
}

const serveUsageHint = "usage: drce serve [options]   (drce serve --help lists them)";

/** The loader of a client command, with the failure report of the client commands' module. */
function client(name: ClientCommandName): () => Promise<Command> {
  return async () => {
    const module = await import("./client-commands.js");
    return { ...(await module.clientCommands[name]()), report: module.reportFailure };
  };
}

/** The loader of `drce run`, from its own module (its own compiled file, which holds nothing of the other commands). */
async function runOnly(): Promise<Command> {
  const module = await import("./run-commands.js");
  return { ...(await module.clientCommands.run()), report: module.reportFailure };
}

const commands: Readonly<Record<string, CommandEntry>> = {
  serve: {
    summary: "start a node",
    load: async () => ({
      usage: serveUsageHint,
      main: async (argv, io) => {
        const { serve } = await import("./serve.js");
        return serve(argv, io);
      },
      report: async (io, command, error) => (await import("./report-failure.js")).reportFailure(io, command, error),
    }),
  },
  run: { summary: "run a command attached: live output, stdin, exit status", load: runOnly },
  submit: { summary: "submit a task (async by default) and print its id", load: client("submit") },
  status: { summary: "show a task's state", load: client("status") },
  logs: { summary: "write a task's output (-f to follow)", load: client("logs") },
  kill: { summary: "terminate a task's process group", load: client("kill") },
  fetch: { summary: "get a task's output and exit status (and delete it)", load: client("fetch") },
  rm: { summary: "delete a finished task's data", load: client("rm") },
  ls: { summary: "list the node's tasks", load: client("ls") },
  watch: { summary: "print task state changes as they happen", load: client("watch") },
  node: { summary: "node administration: info, usage, stats, tasks, reports", load: client("node") },
  nodes: { summary: "list the data nodes: state, load, free slots, labels, host facts", load: client("nodes") },
  completion: {
    summary: "print a shell completion script (bash, zsh)",
    load: async () => {
      const module = await import("./client-commands.js");
      return {
        usage: module.completionUsage,
        // The script lists every command's flags, from their usage texts: all are loaded.
        main: async (argv, io) => module.completionCommand(argv, io, await loadAll()),
        report: module.reportFailure,
      };
    },
  },
};

/** Every command's loaded module, by name, in the table's order. */
async function loadAll(): Promise<Record<string, Command>> {
  const loaded = await Promise.all(Object.entries(commands).map(async ([name, command]) => [name, await command.load()] as const));
  return Object.fromEntries(loaded);
}

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
 * code. Failures are written to io.stderr, never thrown. A command (`serve` too) first puts
 * its own `Headers` class (plain-headers.ts) in place of the global one.
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
  // Before Connect is loaded: Node.js's own Headers would load all of undici (see plain-headers.ts).
  usePlainHeaders();
  const { main, report } = await command.load();
  // A reader that goes away (`drce logs x | head -1`) makes stdout fail with EPIPE: end
  // quietly with 141, as a program killed by SIGPIPE would, instead of crashing.
  const onOutputError = (error: NodeJS.ErrnoException): void => {
    if (error.code !== "EPIPE") throw error;
  };
  const guarded = withOutputErrors(io, onOutputError);
  try {
    return await main([...globals, ...args], guarded.io);
  } catch (error) {
    return report(guarded.io, name, error);
  } finally {
    guarded.detach();
  }
}

/**
 * The same streams, stdout given `listener` for its errors when it is first read rather than
 * now: a command that writes nothing to stdout (`drce run -- true`) never makes the process's
 * stdout stream. `detach` removes the listener from a stdout that was read.
 */
function withOutputErrors(io: CliIo, listener: (error: NodeJS.ErrnoException) => void): { readonly io: CliIo; detach(): void } {
  let stdout: NodeJS.WritableStream | undefined;
  const guarded: CliIo = {
    get stdin() {
      return io.stdin;
    },
    get stdout() {
      if (stdout === undefined) {
        stdout = io.stdout;
        stdout.on("error", listener);
      }
      return stdout;
    },
    get stderr() {
      return io.stderr;
    },
    env: io.env,
    ...(io.stdinFd === undefined ? {} : { stdinFd: io.stdinFd }),
  };
  return { io: guarded, detach: () => stdout?.off("error", listener) };
}

async function help(io: CliIo, topic: string | undefined): Promise<number> {
  if (topic === undefined) return print(io, mainUsage());
  const command = commands[topic];
  if (command === undefined) return usageFailure(io, "", `no help for ${JSON.stringify(topic)}: unknown command`);
  const loaded = await command.load();
  if (topic === "serve") return loaded.main(["--help"], io);
  return print(io, loaded.usage);
}

async function print(io: CliIo, text: string, stream: NodeJS.WritableStream = io.stdout): Promise<number> {
  stream.write(`${text}\n`);
  return ExitCode.Ok;
}

