/**
 * The client commands (all but `serve`), each loaded when it runs, and what reports their
 * failures. The compiled command makes this module and what it imports one file of its own,
 * `dist/drce-client.cjs` (loaded with a V8 code cache by `dist/drce-client-loader.cjs`), in which
 * each command's module is evaluated only when its command runs: a client command reads one
 * file, where chunks shared with the server's code made it read eighteen (see bin/build.js).
 */
import type { CliIo } from "./io.js";

export { completionCommand, completionUsage } from "./completion.js";
export { reportFailure } from "./report-failure.js";

/** A command's module once loaded: its usage text and what runs it. */
export interface LoadedCommand {
  /** The text `drce help COMMAND` prints. */
  readonly usage: string;
  /** Runs the command with its arguments and resolves with its exit code. */
  readonly main: (argv: string[], io: CliIo) => Promise<number>;
}

/** The loader of each client command but `completion` (which needs every command's usage), by name. */
export const clientCommands = {
  run: async () => import("./run.js").then((m) => ({ usage: m.runUsage, main: m.runCommand })),
  submit: async () => import("./submit.js").then((m) => ({ usage: m.submitUsage, main: m.submitCommand })),
  status: async () => import("./status.js").then((m) => ({ usage: m.statusUsage, main: m.statusCommand })),
  logs: async () => import("./logs.js").then((m) => ({ usage: m.logsUsage, main: m.logsCommand })),
  kill: async () => import("./kill.js").then((m) => ({ usage: m.killUsage, main: m.killCommand })),
  fetch: async () => import("./fetch.js").then((m) => ({ usage: m.fetchUsage, main: m.fetchCommand })),
  rm: async () => import("./rm.js").then((m) => ({ usage: m.rmUsage, main: m.rmCommand })),
  ls: async () => import("./ls.js").then((m) => ({ usage: m.lsUsage, main: m.lsCommand })),
  watch: async () => import("./watch.js").then((m) => ({ usage: m.watchUsage, main: m.watchCommand })),
  node: async () => import("./node.js").then((m) => ({ usage: m.nodeUsage, main: m.nodeCommand })),
  nodes: async () => import("./nodes.js").then((m) => ({ usage: m.nodesUsage, main: m.nodesCommand })),
} as const satisfies Readonly<Record<string, () => Promise<LoadedCommand>>>;

/** The name of a client command of {@link clientCommands}. */
export type ClientCommandName = keyof typeof clientCommands;
