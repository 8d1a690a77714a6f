import { fileURLToPath } from "node:url";
import { runToEnd } from "../helpers/run-to-end.js";

/** The repository's root, where the examples and the package.json that names `drce/client` are. */
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** What a finished example left: its exit code and what it printed. */
export interface ExampleResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs an example program to its end, asynchronously (the node it talks to may run in the
 * test's own process), with the given environment added and no DRCE_TOKEN of the caller's.
 */
export function runExample(command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, cwd = repoRoot): Promise<ExampleResult> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  if (env["DRCE_TOKEN"] === undefined) delete childEnv["DRCE_TOKEN"];
  return runToEnd([command, ...args], { cwd, env: childEnv });
}

/**
 * The node arguments that run a TypeScript example from the sources: tsx, and the
 * `drce-source` export condition, under which `drce/client` resolves to src/client/.
 */
export const tsExampleArgs = ["--conditions=drce-source", "--import", "tsx"] as const;
