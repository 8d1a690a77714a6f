import { readFileSync } from "node:fs";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { parseAllowHost, parseCorsOrigin } from "./browser-guard.js";
import { ConfigFileError, readConfigFile, type OptionSource, type RawValue } from "./config-file.js";
import { formatOptionHelp, OptionError, type OptionSpec, type OptionValues } from "./domain/option-table.js";
import { lookupUser } from "./executor/users.js";
import { serveOptions } from "./serve-options.js";

/** Everything a node needs to start: one validated, readonly value, one field per option of {@link serveOptions}. */
export type Config = OptionValues<typeof serveOptions>;

/** The embedded defaults: a usable node on loopback with data in ./.drce. */
export function defaultConfig(): Config {
  const defaults: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(serveOptions)) defaults[key] = spec.default();
  return defaults as Config;
}

/** A configuration error, shown to the operator as is. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Splits "host:port" (IPv6 in brackets) and checks the port. */
export function parseHostPort(value: string, what: string): { host: string; port: number } {
  const match = /^\[?([^\]]*?)\]?:(\d+)$/.exec(value);
  if (match === null) throw new ConfigError(`${what} must be host:port, got ${JSON.stringify(value)}`);
  const port = Number(match[2]);
  if (port > 65535) throw new ConfigError(`${what}: port ${port} is out of range`);
  return { host: match[1] ?? "", port };
}

/** Tells whether an address is loopback only. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

/** The flags of `drce serve`, as node:util's parseArgs takes them, made from the option table. */
function parseArgsOptions(): ParseArgsConfig["options"] {
  const options: NonNullable<ParseArgsConfig["options"]> = { config: { type: "string" }, help: { type: "boolean", short: "h" } };
  for (const spec of Object.values(serveOptions)) {
    options[spec.flag] = spec.arg === undefined ? { type: "boolean" } : { type: "string", multiple: spec.repeatable === true };
    if (spec.off !== undefined) options[spec.off.flag] = { type: "boolean" };
    if (spec.fromFile !== undefined) options[spec.fromFile.flag] = { type: "string" };
  }
  return options;
}

/** Usage text of `drce serve`. */
export const serveUsage = [
  "usage: drce serve [options]",
  `  ${"--config FILE".padEnd(27)} read options from this JSON file, keys named as the flags (flags and environment override it)`,
  ...formatOptionHelp(serveOptions),
].join("\n");

/** The value one source gives an option, or undefined when it gives none. */
function valueFrom(spec: OptionSpec<unknown>, source: OptionSource): unknown {
  if (spec.off !== undefined && source.get(spec.off.flag) === true) return spec.off.value;
  if (spec.fromFile !== undefined) {
    const file = source.get(spec.fromFile.flag);
    if (typeof file === "string") return spec.parse(readFileSync(file, "utf8").trim(), source.name(spec.fromFile.flag));
  }
  const raw = source.get(spec.flag);
  if (raw === undefined) return undefined;
  if (spec.switchValue !== undefined) return raw === true ? spec.switchValue : undefined;
  const name = source.name(spec.flag);
  if (spec.repeatable === true) return (Array.isArray(raw) ? raw : [raw]).flatMap((item: string) => spec.parse(item, name) as unknown[]);
  return spec.parse(String(raw), name);
}

/** Runs the parsers of one source, turning their sentences into ConfigErrors. */
function configValue<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    if (error instanceof OptionError || error instanceof ConfigFileError) throw new ConfigError(error.message, { cause: error });
    throw error;
  }
}

/** Runs a check whose refusal is a plain sentence, turning it into a ConfigError. */
function checked<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    throw new ConfigError((error as Error).message, { cause: error });
  }
}

/**
 * Builds the configuration of `drce serve` from its flags, the environment (DRCE_TOKEN,
 * DRCE_DATA_DIR, DRCE_LISTEN, DRCE_LOG_LEVEL, DRCE_NOTIFY_TOKEN) and the JSON file of
 * `--config`, in that order of precedence, over the embedded defaults.
 */
export function parseServeConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Config | "help" {
  const values = parseArgs({ args: [...argv], options: parseArgsOptions(), allowPositionals: false, strict: true }).values as Record<string, RawValue | undefined>;
  if (values["help"] === true) return "help";
  const flags: OptionSource = { get: (flag) => values[flag], name: (flag) => `--${flag}` };
  const environment: OptionSource = {
    get: (flag) => {
      const spec = Object.values(serveOptions).find((candidate) => candidate.flag === flag);
      return spec?.env === undefined ? undefined : env[spec.env];
    },
    name: (flag) => Object.values(serveOptions).find((candidate) => candidate.flag === flag)?.env ?? `--${flag}`,
  };
  const configFile = values["config"];
  const sources = [flags, environment];
  if (typeof configFile === "string") sources.push(configValue(() => readConfigFile(configFile, serveOptions)));
  const config: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(serveOptions)) {
    let value: unknown;
    for (const source of sources) {
      value = configValue(() => valueFrom(spec, source));
      if (value !== undefined) break;
    }
    config[key] = value ?? spec.default();
  }
  validateConfig(config as Config);
  return config as Config;
}

/** Checks a configuration once; throws ConfigError saying what is wrong. */
export function validateConfig(config: Config): void {
  const listen = parseHostPort(config.listen, "--listen");
  for (const name of config.allowHosts) checked(() => parseAllowHost(name));
  for (const origin of config.corsOrigins) checked(() => parseCorsOrigin(origin));
  const zmq = config.zmqListen === "" ? undefined : parseHostPort(config.zmqListen, "--zmq-listen");
  if ((config.tlsCert === "") !== (config.tlsKey === "")) throw new ConfigError("--tls-cert and --tls-key go together: give both or neither");
  if ((config.clusterCert === "") !== (config.clusterKey === "")) throw new ConfigError("--cluster-cert and --cluster-key go together: give both or neither");
  if (config.tlsClientCa !== "" && config.tlsCert === "") throw new ConfigError("--tls-client-ca needs --tls-cert and --tls-key: client certificates are checked in the TLS handshake");
  if (zmq !== undefined && !isLoopback(zmq.host) && config.token === "") {
    // The ZeroMQ gateway's only credential is the token (PLAIN); mTLS does not reach it.
    throw new ConfigError(`refusing to put the ZeroMQ gateway on ${zmq.host} without a token: anyone who can connect could run commands; set --token (or DRCE_TOKEN / --token-file), keep --zmq-listen on loopback, or use --no-zmq`);
  }
  if (config.runAs !== "") {
    const user = lookupUser(config.runAs);
    if (user === undefined) throw new ConfigError(`--run-as: no user ${JSON.stringify(config.runAs)} on this host`);
    const self = process.geteuid?.() ?? 0;
    if (self !== 0 && user.uid !== self) throw new ConfigError(`--run-as ${config.runAs} needs a node running as root`);
  }
  if (config.notifyUrl !== "") {
    let protocol = "";
    try {
      protocol = new URL(config.notifyUrl).protocol;
    } catch {
      // Not a URL at all: the same answer as a URL of another scheme.
    }
    if (protocol !== "http:" && protocol !== "https:") throw new ConfigError(`--notify-url must be an http or https URL, got ${JSON.stringify(config.notifyUrl)}`);
  }
  if (config.headersTimeoutMs > config.requestTimeoutMs) {
    throw new ConfigError(`--headers-timeout-ms (${config.headersTimeoutMs}) cannot exceed --request-timeout-ms (${config.requestTimeoutMs}): the headers are part of the request`);
  }
  if (config.role === "manager" && config.join !== "") throw new ConfigError("--join is for data nodes: a manager does not join another manager (list data nodes with --node, or let them --join this one)");
  if (config.role !== "manager" && config.nodes.length > 0) throw new ConfigError("--node lists the data nodes of a manager: add --role manager, or start this node with --join MANAGER_URL");
  const adminZmq = config.adminZmqListen === "" ? undefined : parseHostPort(config.adminZmqListen, "--admin-zmq-listen");
  if (adminZmq !== undefined && !isLoopback(adminZmq.host) && config.token === "") {
    // Like the data gateway, the admin socket's only credential is the token (PLAIN).
    throw new ConfigError(`refusing to put the ZeroMQ admin socket on ${adminZmq.host} without a token; set --token (or DRCE_TOKEN / --token-file), keep --admin-zmq-listen on loopback, or use --no-admin-zmq`);
  }
  if (!isLoopback(listen.host) && config.token === "" && config.tlsClientCa === "") {
    throw new ConfigError(
      `refusing to listen on ${listen.host} without credentials: a node reachable beyond loopback runs commands for anyone who can connect; set --token (or DRCE_TOKEN / --token-file), or require client certificates with --tls-client-ca`,
    );
  }
}
