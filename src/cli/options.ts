import { parseArgs, type ParseArgsConfig } from "node:util";
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

// `run` builds its task from here as `submit` does (see task-plan.ts).
export { taskSpecFromOptions, type TaskPlan } from "./task-plan.js";
