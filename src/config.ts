import { cpus, hostname } from "node:os";
import { resolve } from "node:path";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { lookupUser } from "./executor/users.js";
import { parseDuration } from "./domain/duration.js";
import { parseAllowHost, parseCorsOrigin } from "./browser-guard.js";

/** Everything a node needs to start: one validated, readonly value. */
export interface Config {
  /** host:port for Connect, gRPC, gRPC-Web and the legacy HTTP gateway. */
  readonly listen: string;
  /** host:port of the legacy ZeroMQ gateway; empty disables it. */
  readonly zmqListen: string;
  /** host:port of the legacy ZeroMQ admin socket; empty disables it. */
  readonly adminZmqListen: string;
  /** Data directory (tasks live in `<dataDir>/tasks`). */
  readonly dataDir: string;
  /** Node name shown in results. */
  readonly name: string;
  /** Tasks running at once; the rest queue (state 8). */
  readonly maxConcurrent: number;
  /** Tasks waiting at most; past it submission is refused. */
  readonly maxQueue: number;
  /** Bytes kept per output stream (head and tail past it); zero: unlimited. */
  readonly maxOutputBytes: number;
  /** Bytes of each output stream a unary reply (sync SubmitTask, GetTask, FetchTask) carries at most; zero: all. */
  readonly inlineOutputBytes: number;
  /** Ceiling on a task's running time, ms; zero: none. */
  readonly maxTaskMs: number;
  /** Largest request body accepted, bytes. */
  readonly maxRequestBytes: number;
  /** How long a finished task tree is kept, ms; zero: no bound by age. */
  readonly retainFinishedMs: number;
  /** Tasks held at most before the oldest finished trees are deleted; zero: no bound by count. */
  readonly retainMaxTasks: number;
  /** Milliseconds a follower's stream may accept nothing before it is dropped; zero: never. */
  readonly stalledReaderMs: number;
  /** Milliseconds a request's headers (and an HTTP/2 connection's preface and SETTINGS) may take. */
  readonly headersTimeoutMs: number;
  /** Milliseconds a request body may take to arrive in full (a task's stdin stream excepted). */
  readonly requestTimeoutMs: number;
  /** Milliseconds a connection may stay open with no request in flight. */
  readonly idleTimeoutMs: number;
  /** Connections open at once, at most; zero: half the process's open-file limit. */
  readonly maxConnections: number;
  /** Largest file returned by a read-after action, bytes. */
  readonly maxFileBytes: number;
  /** Absolute directories a task's work_dir may name, besides its own directory. */
  readonly allowedDirs: readonly string[];
  /** Dangerous environment names tasks may set anyway. */
  readonly allowEnv: readonly string[];
  /** Task events kept for watchers that resume. */
  readonly eventHistory: number;
  /** Resource reports kept for watchers that resume. */
  readonly reportHistory: number;
  /** How often running tasks and the host are sampled, ms. */
  readonly sampleIntervalMs: number;
  /** Bearer token every API requires; empty: none. */
  readonly token: string;
  /** Grace period for a graceful shutdown, ms. */
  readonly shutdownGraceMs: number;
  /** known_hosts file for SSH sessions. */
  readonly sshKnownHosts: string;
  /** Record unknown SSH host keys instead of refusing them. */
  readonly sshTrustOnFirstUse: boolean;
  /** pino log level ("info", "debug", "silent", ...). */
  readonly logLevel: string;
  /** Where task events (100) and resource reports (101) are POSTed; empty: nowhere. */
  readonly notifyUrl: string;
  /** Bearer token sent with notifications; empty: no Authorization header. */
  readonly notifyToken: string;
  /** Milliseconds one notification POST may take. */
  readonly notifyTimeoutMs: number;
  /** Longest delay between retries of a notification, ms. */
  readonly notifyRetryMaxMs: number;
  /** Send resource reports (101) as well as task events (100). */
  readonly notifyReports: boolean;
  /** PEM certificate chain file of the node's HTTPS endpoint; empty: cleartext. */
  readonly tlsCert: string;
  /** PEM private key file matching tlsCert. */
  readonly tlsKey: string;
  /** PEM CA file; when set, clients must present a certificate it signed (mTLS). */
  readonly tlsClientCa: string;
  /** Put each local task into a control group of its own where the host allows it. */
  readonly cgroups: boolean;
  /** User (name or uid) local tasks run as when they name none; empty: the node's own. */
  readonly runAs: string;
  /** Let tasks ask to run as uid 0. */
  readonly allowRootTasks: boolean;
  /** Host names requests may name besides the node's addresses and loopback (`--allow-host`). */
  readonly allowHosts: readonly string[];
  /** Origins whose web pages may call the node, with CORS (`--cors-origin`). */
  readonly corsOrigins: readonly string[];
}

/** The embedded defaults: a usable node on loopback with data in ./.drce. */
export function defaultConfig(): Config {
  return {
    listen: "127.0.0.1:8470",
    zmqListen: "127.0.0.1:5557",
    adminZmqListen: "127.0.0.1:5548",
    dataDir: resolve(".drce"),
    name: hostname(),
    maxConcurrent: Math.max(4, cpus().length * 8),
    maxQueue: 10_000,
    maxOutputBytes: 256 * 1024 * 1024,
    inlineOutputBytes: 1024 * 1024,
    maxTaskMs: 0,
    maxRequestBytes: 16 * 1024 * 1024,
    retainFinishedMs: 7 * 86_400_000,
    retainMaxTasks: 100_000,
    stalledReaderMs: 60_000,
    headersTimeoutMs: 30_000,
    requestTimeoutMs: 300_000,
    idleTimeoutMs: 65_000,
    maxConnections: 0,
    maxFileBytes: 16 * 1024 * 1024,
    allowedDirs: [],
    allowEnv: [],
    eventHistory: 10_000,
    reportHistory: 1000,
    sampleIntervalMs: 1000,
    token: "",
    shutdownGraceMs: 10_000,
    sshKnownHosts: resolve(process.env["HOME"] ?? "/root", ".ssh/known_hosts"),
    sshTrustOnFirstUse: false,
    logLevel: "info",
    notifyUrl: "",
    notifyToken: "",
    notifyTimeoutMs: 5000,
    notifyRetryMaxMs: 30_000,
    notifyReports: true,
    tlsCert: "",
    tlsKey: "",
    tlsClientCa: "",
    cgroups: true,
    runAs: "",
    allowRootTasks: false,
    allowHosts: [],
    corsOrigins: [],
  };
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

const flags = {
  listen: { type: "string" },
  "zmq-listen": { type: "string" },
  "no-zmq": { type: "boolean" },
  "admin-zmq-listen": { type: "string" },
  "no-admin-zmq": { type: "boolean" },
  "data-dir": { type: "string" },
  name: { type: "string" },
  "max-concurrent": { type: "string" },
  "max-queue": { type: "string" },
  "max-output-bytes": { type: "string" },
  "inline-output-bytes": { type: "string" },
  "max-task-ms": { type: "string" },
  "max-request-bytes": { type: "string" },
  "retain-finished": { type: "string" },
  "retain-max-tasks": { type: "string" },
  "stalled-reader-ms": { type: "string" },
  "headers-timeout-ms": { type: "string" },
  "request-timeout-ms": { type: "string" },
  "idle-timeout-ms": { type: "string" },
  "max-connections": { type: "string" },
  "max-file-bytes": { type: "string" },
  "allow-dir": { type: "string", multiple: true },
  "allow-env": { type: "string", multiple: true },
  "event-history": { type: "string" },
  "report-history": { type: "string" },
  "sample-interval-ms": { type: "string" },
  token: { type: "string" },
  "token-file": { type: "string" },
  "shutdown-grace": { type: "string" },
  "ssh-known-hosts": { type: "string" },
  "ssh-trust-on-first-use": { type: "boolean" },
  "log-level": { type: "string" },
  "notify-url": { type: "string" },
  "notify-token": { type: "string" },
  "notify-timeout-ms": { type: "string" },
  "notify-retry-max-ms": { type: "string" },
  "notify-no-reports": { type: "boolean" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-client-ca": { type: "string" },
  "no-cgroups": { type: "boolean" },
  "run-as": { type: "string" },
  "allow-root-tasks": { type: "boolean" },
  "allow-host": { type: "string", multiple: true },
  "cors-origin": { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
} as const;

/** Usage text of `drce serve`. */
export const serveUsage = `usage: drce serve [options]
  --listen HOST:PORT          Connect/gRPC/gRPC-Web + legacy HTTP (default 127.0.0.1:8470)
  --zmq-listen HOST:PORT      legacy ZeroMQ gateway (default 127.0.0.1:5557); --no-zmq disables
  --admin-zmq-listen H:P      legacy ZeroMQ admin socket (default 127.0.0.1:5548); --no-admin-zmq disables
  --data-dir DIR              task data (default ./.drce)
  --name NAME                 node name in results (default: host name)
  --max-concurrent N          tasks running at once (default 8 per CPU, at least 4)
  --max-queue N               tasks waiting at most (default 10000)
  --max-output-bytes N        bytes kept per output stream, head+tail past it (default 268435456; 0 = all)
  --inline-output-bytes N     bytes per stream a unary reply carries; the rest is streamed (default 1048576; 0 = all)
  --max-task-ms N             ceiling on any task's running time (default 0 = none)
  --max-request-bytes N       largest request body (default 16777216)
  --retain-finished DURATION  delete finished tasks this long after they ended (default 7d; 0 = keep)
  --retain-max-tasks N        past N tasks held, delete the oldest finished ones (default 100000; 0 = no bound)
  --stalled-reader-ms N       drop an output follower or event watcher that accepts nothing this long (default 60000; 0 = never)
  --headers-timeout-ms N      bound on a request's headers and an HTTP/2 connection's preface (default 30000)
  --request-timeout-ms N      bound on a request body, a task's stdin stream excepted (default 300000)
  --idle-timeout-ms N         close a connection with no request in flight after this long (default 65000)
  --max-connections N         connections open at once (default 0 = half the open-file limit)
  --max-file-bytes N          largest file returned by a read-after action (default 16777216)
  --allow-dir DIR             a directory tasks may use as work_dir and name files in (repeatable)
  --allow-env NAME            allow a refused variable such as LD_PRELOAD (repeatable)
  --event-history N           task events kept for resuming watchers (default 10000)
  --report-history N          resource reports kept for resuming watchers (default 1000)
  --sample-interval-ms N      usage sampling interval (default 1000)
  --token T | --token-file F  require "Authorization: Bearer T" (env DRCE_TOKEN)
  --shutdown-grace MS         graceful shutdown bound (default 10000)
  --ssh-known-hosts FILE      known_hosts for SSH sessions (default ~/.ssh/known_hosts)
  --ssh-trust-on-first-use    record unknown SSH host keys instead of refusing them
  --log-level LEVEL           pino level (default info; env DRCE_LOG_LEVEL)
  --notify-url URL            POST task events (100) and resource reports (101) there, as legacy JSON
  --notify-token T            send "Authorization: Bearer T" with them (env DRCE_NOTIFY_TOKEN)
  --notify-timeout-ms N       one notification POST's bound (default 5000)
  --notify-retry-max-ms N     longest delay between retries (default 30000)
  --notify-no-reports         send task events only, no resource reports
  --tls-cert FILE --tls-key FILE   serve HTTPS (HTTP/2 by ALPN, HTTP/1.1 allowed) with this PEM pair
  --tls-client-ca FILE        require client certificates signed by this CA (mTLS; needs --tls-cert)
  --no-cgroups                contain tasks in process groups only, not in a cgroup each
  --run-as USER               user (name or uid) local tasks run as unless they ask (node must be root)
  --allow-root-tasks          let tasks ask to run as uid 0
  --allow-host NAME           a host name callers may use besides the node's addresses and loopback (repeatable)
  --cors-origin ORIGIN        let web pages of this origin call the node, e.g. https://app.example.com (repeatable)`;

function duration(value: string | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(value);
  if (ms === undefined) throw new ConfigError(`--${what} must be a duration such as 7d, 12h, 30m, 90s or 500ms (0: no bound), got ${JSON.stringify(value)}`);
  return ms;
}

function integer(value: string | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new ConfigError(`--${what} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** Runs a flag's parser, turning its sentence into a ConfigError. */
function configValue<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new ConfigError((error as Error).message, { cause: error });
  }
}

/**
 * Builds the configuration of `drce serve` from flags and environment (DRCE_TOKEN,
 * DRCE_DATA_DIR, DRCE_LISTEN, DRCE_LOG_LEVEL), over the embedded defaults.
 */
export function parseServeConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Config | "help" {
  const { values } = parseArgs({ args: [...argv], options: flags, allowPositionals: false, strict: true });
  if (values.help === true) return "help";
  const base = defaultConfig();
  let token = values.token ?? env["DRCE_TOKEN"] ?? "";
  if (values["token-file"] !== undefined) token = readFileSync(values["token-file"], "utf8").trim();
  const config: Config = {
    ...base,
    listen: values.listen ?? env["DRCE_LISTEN"] ?? base.listen,
    zmqListen: values["no-zmq"] === true ? "" : (values["zmq-listen"] ?? base.zmqListen),
    adminZmqListen: values["no-admin-zmq"] === true ? "" : (values["admin-zmq-listen"] ?? base.adminZmqListen),
    dataDir: resolve(values["data-dir"] ?? env["DRCE_DATA_DIR"] ?? base.dataDir),
    name: values.name ?? base.name,
    maxConcurrent: Math.max(1, integer(values["max-concurrent"], base.maxConcurrent, "max-concurrent")),
    maxQueue: integer(values["max-queue"], base.maxQueue, "max-queue"),
    maxOutputBytes: integer(values["max-output-bytes"], base.maxOutputBytes, "max-output-bytes"),
    inlineOutputBytes: integer(values["inline-output-bytes"], base.inlineOutputBytes, "inline-output-bytes"),
    maxTaskMs: integer(values["max-task-ms"], base.maxTaskMs, "max-task-ms"),
    maxRequestBytes: integer(values["max-request-bytes"], base.maxRequestBytes, "max-request-bytes"),
    retainFinishedMs: duration(values["retain-finished"], base.retainFinishedMs, "retain-finished"),
    retainMaxTasks: integer(values["retain-max-tasks"], base.retainMaxTasks, "retain-max-tasks"),
    stalledReaderMs: integer(values["stalled-reader-ms"], base.stalledReaderMs, "stalled-reader-ms"),
    headersTimeoutMs: Math.max(1, integer(values["headers-timeout-ms"], base.headersTimeoutMs, "headers-timeout-ms")),
    requestTimeoutMs: Math.max(1, integer(values["request-timeout-ms"], base.requestTimeoutMs, "request-timeout-ms")),
    idleTimeoutMs: Math.max(1, integer(values["idle-timeout-ms"], base.idleTimeoutMs, "idle-timeout-ms")),
    maxConnections: integer(values["max-connections"], base.maxConnections, "max-connections"),
    maxFileBytes: integer(values["max-file-bytes"], base.maxFileBytes, "max-file-bytes"),
    allowedDirs: (values["allow-dir"] ?? []).map((d) => resolve(d)),
    allowEnv: values["allow-env"] ?? [],
    eventHistory: Math.max(1, integer(values["event-history"], base.eventHistory, "event-history")),
    reportHistory: Math.max(1, integer(values["report-history"], base.reportHistory, "report-history")),
    sampleIntervalMs: Math.max(50, integer(values["sample-interval-ms"], base.sampleIntervalMs, "sample-interval-ms")),
    token,
    shutdownGraceMs: integer(values["shutdown-grace"], base.shutdownGraceMs, "shutdown-grace"),
    sshKnownHosts: values["ssh-known-hosts"] ?? base.sshKnownHosts,
    sshTrustOnFirstUse: values["ssh-trust-on-first-use"] === true,
    logLevel: values["log-level"] ?? env["DRCE_LOG_LEVEL"] ?? base.logLevel,
    notifyUrl: values["notify-url"] ?? base.notifyUrl,
    notifyToken: values["notify-token"] ?? env["DRCE_NOTIFY_TOKEN"] ?? base.notifyToken,
    notifyTimeoutMs: Math.max(1, integer(values["notify-timeout-ms"], base.notifyTimeoutMs, "notify-timeout-ms")),
    notifyRetryMaxMs: Math.max(1, integer(values["notify-retry-max-ms"], base.notifyRetryMaxMs, "notify-retry-max-ms")),
    notifyReports: values["notify-no-reports"] !== true,
    tlsCert: values["tls-cert"] === undefined ? "" : resolve(values["tls-cert"]),
    tlsKey: values["tls-key"] === undefined ? "" : resolve(values["tls-key"]),
    tlsClientCa: values["tls-client-ca"] === undefined ? "" : resolve(values["tls-client-ca"]),
    cgroups: values["no-cgroups"] !== true,
    runAs: values["run-as"] ?? base.runAs,
    allowRootTasks: values["allow-root-tasks"] === true,
    allowHosts: (values["allow-host"] ?? []).map((name) => configValue(() => parseAllowHost(name))),
    corsOrigins: (values["cors-origin"] ?? []).map((origin) => configValue(() => parseCorsOrigin(origin))),
  };
  validateConfig(config);
  return config;
}

/** Checks a configuration once; throws ConfigError saying what is wrong. */
export function validateConfig(config: Config): void {
  const listen = parseHostPort(config.listen, "--listen");
  for (const name of config.allowHosts) configValue(() => parseAllowHost(name));
  for (const origin of config.corsOrigins) configValue(() => parseCorsOrigin(origin));
  const zmq = config.zmqListen === "" ? undefined : parseHostPort(config.zmqListen, "--zmq-listen");
  if ((config.tlsCert === "") !== (config.tlsKey === "")) throw new ConfigError("--tls-cert and --tls-key go together: give both or neither");
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
