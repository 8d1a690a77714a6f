import { resolve } from "node:path";
import { parseAllowHost, parseCorsOrigin } from "./browser-guard.js";
import { clusterOptions } from "./cluster/cluster-options.js";
import { nodeOptions } from "./core/node-options.js";
import { absolutePath, integer, listOption, namingSource, optionalPath, switchOption, text, valueOption } from "./domain/option-table.js";

/**
 * Every option of `drce serve`, each declared once, in the order `drce serve --help` lists
 * them: the Config type, the flag parser, the environment, the config file and the help text
 * are all made from this table.
 */
export const serveOptions = {
  /** host:port for Connect, gRPC, gRPC-Web and the legacy HTTP gateway. */
  listen: valueOption({ flag: "listen", arg: "HOST:PORT", env: "DRCE_LISTEN", default: () => "127.0.0.1:8470", defaultHelp: "127.0.0.1:8470", parse: text, help: "Connect/gRPC/gRPC-Web + legacy HTTP" }),
  /** host:port of the legacy ZeroMQ gateway; empty disables it. */
  zmqListen: valueOption({ flag: "zmq-listen", arg: "HOST:PORT", off: { flag: "no-zmq", value: "" }, default: () => "127.0.0.1:5557", defaultHelp: "127.0.0.1:5557", parse: text, help: "legacy ZeroMQ gateway" }),
  /** host:port of the legacy ZeroMQ admin socket; empty disables it. */
  adminZmqListen: valueOption({ flag: "admin-zmq-listen", arg: "H:P", off: { flag: "no-admin-zmq", value: "" }, default: () => "127.0.0.1:5548", defaultHelp: "127.0.0.1:5548", parse: text, help: "legacy ZeroMQ admin socket" }),
  /** Data directory (tasks live in `<dataDir>/tasks`). */
  dataDir: valueOption({ flag: "data-dir", arg: "DIR", env: "DRCE_DATA_DIR", default: () => resolve(".drce"), defaultHelp: "./.drce", parse: absolutePath, help: "task data" }),
  name: nodeOptions.name,
  role: clusterOptions.role,
  nodes: clusterOptions.nodes,
  join: clusterOptions.join,
  joinToken: clusterOptions.joinToken,
  advertiseUrl: clusterOptions.advertiseUrl,
  labels: clusterOptions.labels,
  heartbeatMs: clusterOptions.heartbeatMs,
  nodeTimeoutMs: clusterOptions.nodeTimeoutMs,
  mode: clusterOptions.mode,
  weights: clusterOptions.weights,
  clusterCa: clusterOptions.clusterCa,
  clusterCert: clusterOptions.clusterCert,
  clusterKey: clusterOptions.clusterKey,
  maxConcurrent: nodeOptions.maxConcurrent,
  maxQueue: nodeOptions.maxQueue,
  maxOutputBytes: nodeOptions.maxOutputBytes,
  inlineOutputBytes: nodeOptions.inlineOutputBytes,
  maxTaskMs: nodeOptions.maxTaskMs,
  maxRequestBytes: nodeOptions.maxRequestBytes,
  retainFinishedMs: nodeOptions.retainFinishedMs,
  retainMaxTasks: nodeOptions.retainMaxTasks,
  /** Milliseconds a follower's stream may accept nothing before it is dropped; zero: never. */
  stalledReaderMs: valueOption({ flag: "stalled-reader-ms", arg: "N", default: () => 60_000, defaultHelp: "60000", parse: integer(), help: "drop an output follower or event watcher that accepts nothing this long; 0 = never" }),
  /** Milliseconds a request's headers (and an HTTP/2 connection's preface and SETTINGS) may take. */
  headersTimeoutMs: valueOption({ flag: "headers-timeout-ms", arg: "N", default: () => 30_000, defaultHelp: "30000", parse: integer(1), help: "bound on a request's headers and an HTTP/2 connection's preface" }),
  /** Milliseconds a request body may take to arrive in full (a task's stdin stream excepted). */
  requestTimeoutMs: valueOption({ flag: "request-timeout-ms", arg: "N", default: () => 300_000, defaultHelp: "300000", parse: integer(1), help: "bound on a request body, a task's stdin stream excepted" }),
  /** Milliseconds a connection may stay open with no request in flight. */
  idleTimeoutMs: valueOption({ flag: "idle-timeout-ms", arg: "N", default: () => 65_000, defaultHelp: "65000", parse: integer(1), help: "close a connection with no request in flight after this long" }),
  /** Connections open at once, at most; zero: half the process's open-file limit. */
  maxConnections: valueOption({ flag: "max-connections", arg: "N", default: () => 0, defaultHelp: "0 = half the open-file limit", parse: integer(), help: "connections open at once" }),
  maxFileBytes: nodeOptions.maxFileBytes,
  allowedDirs: nodeOptions.allowedDirs,
  allowEnv: nodeOptions.allowEnv,
  eventHistory: nodeOptions.eventHistory,
  reportHistory: nodeOptions.reportHistory,
  sampleIntervalMs: nodeOptions.sampleIntervalMs,
  token: nodeOptions.token,
  /** Grace period for a graceful shutdown, ms. */
  shutdownGraceMs: valueOption({ flag: "shutdown-grace", arg: "MS", default: () => 10_000, defaultHelp: "10000", parse: integer(), help: "graceful shutdown bound" }),
  /** known_hosts file for SSH sessions. */
  sshKnownHosts: valueOption({ flag: "ssh-known-hosts", arg: "FILE", default: () => resolve(process.env["HOME"] ?? "/root", ".ssh/known_hosts"), defaultHelp: "~/.ssh/known_hosts", parse: text, help: "known_hosts for SSH sessions" }),
  /** Record unknown SSH host keys instead of refusing them. */
  sshTrustOnFirstUse: switchOption({ flag: "ssh-trust-on-first-use", value: true, fallback: false, help: "record unknown SSH host keys instead of refusing them" }),
  /** pino log level ("info", "debug", "silent", ...). */
  logLevel: valueOption({ flag: "log-level", arg: "LEVEL", env: "DRCE_LOG_LEVEL", default: () => "info", defaultHelp: "info", parse: text, help: "pino level" }),
  /** Where task events (100) and resource reports (101) are POSTed; empty: nowhere. */
  notifyUrl: valueOption({ flag: "notify-url", arg: "URL", default: () => "", parse: text, help: "POST task events (100) and resource reports (101) there, as legacy JSON" }),
  /** Bearer token sent with notifications; empty: no Authorization header. */
  notifyToken: valueOption({ flag: "notify-token", arg: "T", env: "DRCE_NOTIFY_TOKEN", default: () => "", parse: text, help: 'send "Authorization: Bearer T" with them' }),
  /** Milliseconds one notification POST may take. */
  notifyTimeoutMs: valueOption({ flag: "notify-timeout-ms", arg: "N", default: () => 5000, defaultHelp: "5000", parse: integer(1), help: "one notification POST's bound" }),
  /** Longest delay between retries of a notification, ms. */
  notifyRetryMaxMs: valueOption({ flag: "notify-retry-max-ms", arg: "N", default: () => 30_000, defaultHelp: "30000", parse: integer(1), help: "longest delay between retries" }),
  /** Send resource reports (101) as well as task events (100). */
  notifyReports: switchOption({ flag: "notify-no-reports", value: false, fallback: true, help: "send task events only, no resource reports" }),
  /** PEM certificate chain file of the node's HTTPS endpoint; empty: cleartext. */
  tlsCert: valueOption({ flag: "tls-cert", arg: "FILE", default: () => "", parse: optionalPath, help: "serve HTTPS (HTTP/2 by ALPN, HTTP/1.1 allowed) with this PEM chain; needs --tls-key" }),
  /** PEM private key file matching tlsCert. */
  tlsKey: valueOption({ flag: "tls-key", arg: "FILE", default: () => "", parse: optionalPath, help: "the PEM private key of --tls-cert" }),
  /** PEM CA file; when set, clients must present a certificate it signed (mTLS). */
  tlsClientCa: valueOption({ flag: "tls-client-ca", arg: "FILE", default: () => "", parse: optionalPath, help: "require client certificates signed by this CA (mTLS; needs --tls-cert)" }),
  /** Put each local task into a control group of its own where the host allows it. */
  cgroups: switchOption({ flag: "no-cgroups", value: false, fallback: true, help: "contain tasks in process groups only, not in a cgroup each" }),
  /** User (name or uid) local tasks run as when they name none; empty: the node's own. */
  runAs: valueOption({ flag: "run-as", arg: "USER", default: () => "", parse: text, help: "user (name or uid) local tasks run as unless they ask (node must be root)" }),
  /** Let tasks ask to run as uid 0. */
  allowRootTasks: switchOption({ flag: "allow-root-tasks", value: true, fallback: false, help: "let tasks ask to run as uid 0" }),
  /** Host names requests may name besides the node's addresses and loopback (`--allow-host`). */
  allowHosts: listOption({ flag: "allow-host", arg: "NAME", parse: namingSource("allow-host", parseAllowHost), help: "a host name callers may use besides the node's addresses and loopback" }),
  /** Origins whose web pages may call the node, with CORS (`--cors-origin`). */
  corsOrigins: listOption({ flag: "cors-origin", arg: "ORIGIN", parse: namingSource("cors-origin", parseCorsOrigin), help: "let web pages of this origin call the node, e.g. https://app.example.com" }),
};
