import { constants } from "node:os";
import { basename, isAbsolute, relative, resolve } from "node:path";
import { UsageError } from "./errors.js";

/*
 * The values of the client commands' options, each read from its text with a usage error
 * (exit 2) naming the flag: the command words, --env, --file, --get, --ssh, signals, numbers,
 * and the local path a result file may be written to.
 */

/** A file to read back after the task and where to write it locally. */
export interface GetRequest {
  /** Name relative to the task's working directory, as sent to the node. */
  readonly name: string;
  /** Local path to write the content to, relative to the current directory. */
  readonly localPath: string;
}

/** The command of a task: `-c STRING`, one word (a shell command line) or an argv. */
export function resolveCommand(commandFlag: string | undefined, words: readonly string[]): { command: string } | { argv: string[] } {
  if (commandFlag !== undefined) {
    if (words.length > 0) throw new UsageError("give the command either with -c or after the options, not both");
    if (commandFlag === "") throw new UsageError("-c needs a non-empty command line");
    return { command: commandFlag };
  }
  if (words.length === 0) throw new UsageError("no command given (e.g. drce run -- make test)");
  if (words.length === 1) {
    if (words[0] === "") throw new UsageError("the command is empty");
    return { command: words[0] ?? "" };
  }
  return { argv: [...words] };
}

/**
 * Reads `NAME=VALUE`; a bare `NAME` takes its value from the local environment, as
 * `docker run -e NAME` does.
 */
export function parseEnvAssignment(text: string, env: Readonly<Record<string, string | undefined>>): [string, string] {
  const eq = text.indexOf("=");
  const name = eq < 0 ? text : text.slice(0, eq);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new UsageError(`--env ${JSON.stringify(text)}: expected NAME=VALUE`);
  if (eq >= 0) return [name, text.slice(eq + 1)];
  const value = env[name];
  if (value === undefined) throw new UsageError(`--env ${name}: ${name} is not set in the local environment`);
  return [name, value];
}

/** A `--file` argument: `NAME=@LOCALPATH` (content of a local file) or `NAME=TEXT` (literal). */
export type FileSource = { readonly name: string } & ({ readonly path: string } | { readonly text: string });

/** Reads a `--file NAME=@LOCALPATH` or `--file NAME=TEXT` argument. */
export function parseFileOption(text: string): FileSource {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new UsageError(`--file ${JSON.stringify(text)}: expected NAME=@LOCALPATH or NAME=TEXT`);
  const name = text.slice(0, eq);
  const value = text.slice(eq + 1);
  if (value.startsWith("@")) {
    if (value.length === 1) throw new UsageError(`--file ${name}=@: the local path is missing`);
    return { name, path: value.slice(1) };
  }
  return { name, text: value };
}

/**
 * Reads a `--get NAME[:LOCALPATH]` argument. Without LOCALPATH the file is written to the
 * current directory under NAME's last component, so a name like `../x` cannot place it
 * elsewhere by accident.
 */
export function parseGetOption(text: string): GetRequest {
  const colon = text.indexOf(":");
  const name = colon < 0 ? text : text.slice(0, colon);
  const local = colon < 0 ? "" : text.slice(colon + 1);
  if (name === "") throw new UsageError(`--get ${JSON.stringify(text)}: expected NAME[:LOCALPATH]`);
  const localPath = local === "" ? basename(name) : local;
  if (localPath === "" || localPath === "." || localPath === "..") throw new UsageError(`--get ${JSON.stringify(text)}: give a local path`);
  return { name, localPath };
}

/** Reads `[user@]host[:port]`; an IPv6 host goes in brackets (`root@[::1]:2222`). */
export function parseSshTarget(text: string): { user: string; host: string; port: number } {
  const match = /^(?:([^@]*)@)?(\[[^\]]+\]|[^:@[\]]+)(?::(\d+))?$/.exec(text);
  if (match === null) throw new UsageError(`--ssh ${JSON.stringify(text)}: expected user@host[:port]`);
  const port = match[3] === undefined ? 0 : Number(match[3]);
  if (port > 65535 || (match[3] !== undefined && port === 0)) throw new UsageError(`--ssh ${JSON.stringify(text)}: bad port`);
  const host = (match[2] ?? "").replace(/^\[(.*)\]$/, "$1");
  return { user: match[1] ?? "", host, port };
}

/** Reads a signal as a number (`9`) or a name (`KILL`, `SIGKILL`, `term`). */
export function parseSignal(text: string): number {
  if (/^\d+$/.test(text)) {
    const number = Number(text);
    if (number < 1 || number > 64) throw new UsageError(`--signal ${text}: not a signal number`);
    return number;
  }
  const upper = text.toUpperCase();
  const name = (upper.startsWith("SIG") ? upper : `SIG${upper}`) as NodeJS.Signals;
  const number = constants.signals[name];
  if (number === undefined) throw new UsageError(`--signal ${text}: unknown signal`);
  return number;
}

/** Reads a non-negative decimal integer no greater than max. */
export function parseUint(text: string, what: string, max = 0xffffffff): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${what}: expected a non-negative integer, got ${JSON.stringify(text)}`);
  const value = Number(text);
  if (value > max) throw new UsageError(`${what}: ${text} is too large (at most ${max})`);
  return value;
}

/**
 * Where a result file named by the node goes under dir, or undefined when the name is
 * absolute or climbs out of dir (`../x`): a node must not be able to write elsewhere.
 */
export function confinedPath(dir: string, name: string): string | undefined {
  if (name === "" || isAbsolute(name) || name.includes("\0")) return undefined;
  const root = resolve(dir);
  const target = resolve(root, name);
  const rel = relative(root, target);
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return undefined;
  return target;
}
