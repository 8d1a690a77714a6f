import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The drce command as a user runs it. */
export const drceBin = fileURLToPath(new URL("../../bin/drce.cjs", import.meta.url));

/** What a finished `drce` process left: its exit code (or the signal that ended it) and everything it printed. */
export interface CliResult {
  readonly code: number | null;
  /** Present only when a signal ended the process, so that results compare equal to `{ code, stdout, stderr }`. */
  readonly signal?: NodeJS.Signals;
  readonly stdout: string;
  readonly stderr: string;
}

/** How {@link startDrce} and {@link runDrce} run drce. */
export interface DrceRunOptions {
  /** The node drce talks to, given as DRCE_SERVER; without it drce uses its default or `--server`. */
  readonly server?: string | undefined;
  /** Bytes for drce's stdin; without it stdin is /dev/null. */
  readonly input?: string | Buffer | undefined;
  /** The token, given as DRCE_TOKEN; without it (and without `env.DRCE_TOKEN`) the caller's DRCE_TOKEN is removed. */
  readonly token?: string | undefined;
  /**
   * The environment over the caller's (after `server` and `token`): a string sets a variable,
   * undefined removes it.
   */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Removes every inherited DRCE_* variable first, as for a user who set none. */
  readonly cleanDrceEnv?: boolean | undefined;
  /** The working directory; the caller's without it. */
  readonly cwd?: string | undefined;
  /** Kills drce (SIGKILL) once it has run this long, so a hung drce never outlives its test. */
  readonly timeoutMs?: number | undefined;
  /** Takes each chunk of stdout as it comes instead of keeping it (the result's stdout is then ""). */
  readonly onStdout?: ((chunk: Buffer) => void) | undefined;
}

/** A drce process under way: the child (to signal it), its end, and what it printed so far. */
export interface RunningDrce {
  readonly child: ChildProcess;
  readonly done: Promise<CliResult>;
  /** The stdout so far. */
  stdout(): string;
  /** The stderr so far. */
  stderr(): string;
}

/** The environment of a drce child for `options`. */
function drceEnv(options: DrceRunOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (options.cleanDrceEnv === true) for (const name of Object.keys(env)) if (name.startsWith("DRCE_")) delete env[name];
  delete env["DRCE_TOKEN"];
  if (options.server !== undefined) env["DRCE_SERVER"] = options.server;
  if (options.token !== undefined) env["DRCE_TOKEN"] = options.token;
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/** Starts `drce ARGS` with piped output; see {@link DrceRunOptions}. */
export function startDrce(args: readonly string[], options: DrceRunOptions = {}): RunningDrce {
  const child = spawn(process.execPath, [drceBin, ...args], {
    env: drceEnv(options),
    stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  let stdout = "";
  let stderr = "";
  const onStdout = options.onStdout;
  if (onStdout === undefined) child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  else child.stdout?.on("data", onStdout);
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  if (options.input !== undefined) child.stdin?.end(options.input);
  const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, ...(signal === null ? {} : { signal }), stdout, stderr });
    });
  });
  return { child, done, stdout: () => stdout, stderr: () => stderr };
}

/**
 * Runs `drce ARGS` against the node at `server` to its end, without the caller's token
 * unless `options` gives one.
 */
export function runDrce(server: string, args: readonly string[], options: Omit<DrceRunOptions, "server"> = {}): Promise<CliResult> {
  return startDrce(args, { ...options, server }).done;
}
