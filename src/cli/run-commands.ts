/**
 * `drce run` alone, and what reports its failures: the most used command (and what `drce run
 * --all` runs) gets a compiled file of its own, `dist/drce-run.cjs` with its own V8 code cache
 * (see bin/build.js), so that a run reads, deserialises and evaluates only what it needs: not
 * the other commands' modules, nor node_service.proto's descriptor. Its shape is that of
 * client-commands.ts, whose table keeps `run` too (for `drce completion`, which needs every
 * command's usage).
 */
import type { LoadedCommand } from "./client-commands.js";

export { reportFailure } from "./report-failure.js";

/** The loader of `drce run`, as {@link clientCommands} names it. */
export const clientCommands = {
  run: async (): Promise<LoadedCommand> => import("./run.js").then((m) => ({ usage: m.runUsage, main: m.runCommand })),
} as const;
