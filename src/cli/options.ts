import { constants } from "node:os";
import { basename, isAbsolute, relative, resolve } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { create } from "@bufbuild/protobuf";
import { SessionSchema, SessionType, TaskMode, TaskSpecSchema, type FileSpec, type TaskSpec } from "../../gen/drce/v1/task_pb.js";
import { UsageError } from "./errors.js";

/** The option table shape that node:util parseArgs takes. */
export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

/** The URL a command talks to when neither --server nor DRCE_SERVER says otherwise. */
export const defaultServer = "http://127.0.0.1:8470";

/** Options every client command takes. */
export const commonOptions = {
  server: { type: "string" },
  token: { type: "string" },
  "token-file": { type: "string" },
  "connect-timeout": { type: "string" },
  cacert: { type: "string" },
  cert: { type: "string" },
  "cert-key": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionSpec;

/** Options that describe a task, shared by `run` and `submit`. */
export const taskOptions = {
  command: { type: "string", short: "c" },
  id: { type: "string" },
  alias: { type: "string" },
  env: { type: "string", short: "e", multiple: true },
  cwd: { type: "string" },
  shell: { type: "string" },
  timeout: { type: "string" },
  "time-max": { type: "string" },
  ttl: { type: "string" },
  file: { type: "string", multiple: true },
  get: { type: "string", multiple: true },
  cleanup: { type: "boolean" },
  ssh: { type: "string" },
  "password-env": { type: "string" },
  key: { type: "string" },
  "passphrase-env": { type: "string" },
  fingerprint: { type: "string" },
  uid: { type: "string" },
  gid: { type: "string" },
} as const satisfies OptionSpec;

/** The parsed values of {@link taskOptions}. */
export interface TaskOptionValues {
  command?: string | undefined;
  id?: string | undefined;
  alias?: string | undefined;
  env?: string[] | undefined;
  cwd?: string | undefined;
  shell?: string | undefined;
  timeout?: string | undefined;
  "time-max"?: string | undefined;
  ttl?: string | undefined;
  file?: string[] | undefined;
  get?: string[] | undefined;
  cleanup?: boolean | undefined;
  ssh?: string | undefined;
  "password-env"?: string | undefined;
  key?: string | undefined;
  "passphrase-env"?: string | undefined;
  fingerprint?: string | undefined;
  uid?: string | undefined;
  gid?: string | undefined;
}

/** The values of {@link commonOptions}. */
export interface CommonValues {
  server?: string | undefined;
  token?: string | undefined;
  "token-file"?: string | undefined;
  "connect-timeout"?: string | undefined;
  cacert?: string | undefined;
  cert?: string | undefined;
  "cert-key"?: string | undefined;
  json?: boolean | undefined;
  help?: boolean | undefined;
}

/** A file to read back after the task and where to write it locally. */
export interface GetRequest {
  /** Name relative to the task's working directory, as sent to the node. */
  readonly name: string;
  /** Local path to write the content to, relative to the current directory. */
  readonly localPath: string;
}

/** Action bits of a FileSpec (see proto FileSpec.action). */
export const FileAction = { CreateBefore: 1, DeleteBefore: 2, ReadAfter: 4, DeleteAfter: 8 } as const;

/**
 * Splits a `run`/`submit` command line into drce's options and the remote command.
 * Options end at `--` or at the first word that is not an option or an option's value,
 * so `drce run ls -la` runs `ls -la` while `drce run --env A=1 -- ls` runs `ls`.
 */
export function splitAtCommand(argv: readonly string[], options: OptionSpec): { optionArgs: string[]; command: string[] } {
  const takesValue = (option: { type: "string" | "boolean" } | undefined): boolean => option?.type === "string";
  const byShort = new Map(Object.values(options).flatMap((o) => (o.short === undefined ? [] : [[o.short, o] as const])));
  const optionArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? "";
    if (token === "--") return { optionArgs, command: argv.slice(i + 1) };
    if (token.startsWith("--")) {
      optionArgs.push(token);
      const name = token.slice(2);
      if (!name.includes("=") && takesValue(options[name]) && i + 1 < argv.length) optionArgs.push(argv[++i] ?? "");
      continue;
    }
    if (token.startsWith("-") && token.length > 1) {
      optionArgs.push(token);
      // A cluster of short flags: the first one that takes a value takes the rest of the
      // token, or the next word when nothing follows it.
      for (let j = 1; j < token.length; j++) {
        if (takesValue(byShort.get(token[j] ?? ""))) {
          if (j === token.length - 1 && i + 1 < argv.length) optionArgs.push(argv[++i] ?? "");
          break;
        }
      }
      continue;
    }
    return { optionArgs, command: argv.slice(i) };
  }
  return { optionArgs, command: [] };
}

/**
 * Parses a command's options strictly with node:util parseArgs (positionals allowed;
 * the caller checks their number), turning its errors into usage errors.
 */
export function parseOptions<const O extends OptionSpec>(args: readonly string[], options: O) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError((error as Error).message, { cause: error });
  }
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

/** What {@link taskSpecFromOptions} needs from the outside world. */
export interface SpecDeps {
  /** Reads a local file (for --file @PATH, --key). */
  readonly readFile: (path: string) => Promise<Uint8Array>;
  /** The local environment (for --env NAME, --password-env, --passphrase-env). */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** A task spec built from the command line, and the files to write locally afterwards. */
export interface TaskPlan {
  readonly spec: TaskSpec;
  readonly gets: readonly GetRequest[];
}

/** Builds the TaskSpec that `run` and `submit` send from their parsed options and command words. */
export async function taskSpecFromOptions(values: TaskOptionValues, words: readonly string[], deps: SpecDeps): Promise<TaskPlan> {
  const what = resolveCommand(values.command, words);
  const env: Record<string, string> = {};
  for (const assignment of values.env ?? []) {
    const [name, value] = parseEnvAssignment(assignment, deps.env);
    env[name] = value;
  }

  // --file and --get on the same name make one entry: written before, read after.
  const files = new Map<string, { data: Uint8Array; action: number }>();
  for (const text of values.file ?? []) {
    const source = parseFileOption(text);
    const data = "path" in source ? await deps.readFile(source.path) : new TextEncoder().encode(source.text);
    const entry = files.get(source.name) ?? { data: new Uint8Array(0), action: 0 };
    files.set(source.name, { data, action: entry.action | FileAction.CreateBefore });
  }
  const gets = (values.get ?? []).map(parseGetOption);
  for (const get of gets) {
    const entry = files.get(get.name) ?? { data: new Uint8Array(0), action: 0 };
    files.set(get.name, { ...entry, action: entry.action | FileAction.ReadAfter });
  }
  const fileSpecs: Array<Pick<FileSpec, "name" | "data" | "action">> = [...files].map(([name, f]) => ({ name, data: f.data, action: f.action }));

  const spec = create(TaskSpecSchema, {
    id: values.id ?? "",
    alias: values.alias ?? "",
    ...what,
    env,
    workDir: values.cwd ?? "",
    shell: values.shell ?? "",
    mode: TaskMode.SYNC,
    timeoutSeconds: values.timeout === undefined ? 0 : parseUint(values.timeout, "--timeout"),
    timeMaxMs: values["time-max"] === undefined ? 0n : BigInt(parseUint(values["time-max"], "--time-max", Number.MAX_SAFE_INTEGER)),
    ttlMs: values.ttl === undefined ? 0n : BigInt(parseUint(values.ttl, "--ttl", Number.MAX_SAFE_INTEGER)),
    cleanup: values.cleanup === true,
    files: fileSpecs,
  });
  const session = await sessionFromOptions(values, deps);
  if (session !== undefined) spec.session = session;
  return { spec, gets };
}

async function sessionFromOptions(values: TaskOptionValues, deps: SpecDeps): Promise<TaskSpec["session"]> {
  const sshOnly = (["password-env", "key", "passphrase-env", "fingerprint"] as const).filter((k) => values[k] !== undefined);
  if (values.ssh === undefined) {
    if (sshOnly.length > 0) throw new UsageError(`--${sshOnly[0]} needs --ssh user@host`);
    if (values.uid === undefined && values.gid === undefined) return undefined;
    // Run as another user on the node (which must run as root).
    return create(SessionSchema, {
      type: SessionType.LOCAL,
      ...(values.uid === undefined ? {} : { runAsUid: parseUint(values.uid, "--uid", 0xfffffffe) }),
      ...(values.gid === undefined ? {} : { runAsGid: parseUint(values.gid, "--gid", 0xfffffffe) }),
    });
  }
  if (values.uid !== undefined || values.gid !== undefined) throw new UsageError("--uid and --gid apply to tasks on the node itself, not over --ssh");
  const target = parseSshTarget(values.ssh);
  const secret = (flag: "password-env" | "passphrase-env"): string => {
    const name = values[flag];
    if (name === undefined) return "";
    const value = deps.env[name];
    if (value === undefined) throw new UsageError(`--${flag} ${name}: ${name} is not set in the local environment`);
    return value;
  };
  const key = values.key === undefined ? "" : new TextDecoder().decode(await deps.readFile(values.key));
  return create(SessionSchema, {
    type: SessionType.SSH,
    host: target.host,
    port: target.port,
    user: target.user,
    password: secret("password-env"),
    privateKey: key,
    passphrase: secret("passphrase-env"),
    hostFingerprint: values.fingerprint ?? "",
  });
}
