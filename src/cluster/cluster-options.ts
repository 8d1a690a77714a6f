import { isPlacementMode, parseWeights } from "./placement.js";
import type { PlacementMode, UsageFigure } from "../domain/placement.js";
import { integer, listOption, optionalPath, OptionError, text, valueOption, type OptionValues } from "../domain/option-table.js";

/** What a node started with `drce serve` does. */
export type ServeRole = "data" | "manager";

/** Parses `--role`. */
function role(raw: string, name: string): ServeRole {
  if (raw !== "data" && raw !== "manager") throw new OptionError(`${name} must be data or manager, got ${JSON.stringify(raw)}`);
  return raw;
}

/** Parses an http(s) base URL with no path (`--node`, `--join`, `--advertise-url`); "" stays "". */
function baseUrl(raw: string, name: string): string {
  if (raw === "") return "";
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new OptionError(`${name} ${JSON.stringify(raw)} is not a URL (e.g. http://10.0.0.5:8470)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new OptionError(`${name} ${raw}: use an http:// or https:// URL`);
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "") throw new OptionError(`${name} ${raw}: a node's URL has no path (use ${url.protocol}//${url.host})`);
  return `${url.protocol}//${url.host}`;
}

/** Parses one `--label key=value`. */
function label(raw: string, name: string): readonly [string, string] {
  const at = raw.indexOf("=");
  if (at <= 0) throw new OptionError(`${name} must be key=value, got ${JSON.stringify(raw)}`);
  return [raw.slice(0, at), raw.slice(at + 1)];
}

/** Parses `--mode`. */
function mode(raw: string, name: string): PlacementMode {
  if (!isPlacementMode(raw)) throw new OptionError(`${name} must be balanced, round-robin, random or all, got ${JSON.stringify(raw)}`);
  return raw;
}

/** Parses `--weights`. */
function weights(raw: string, name: string): Readonly<Partial<Record<UsageFigure, number>>> {
  if (raw === "") return {};
  try {
    return parseWeights(raw);
  } catch (error) {
    throw new OptionError(`${name}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * The options of a node's place in a cluster, each declared once: `drce serve` takes them
 * among its own (see serve-options.ts). A manager lists nodes (`--node`) and sets its
 * placement defaults; a data node joins a manager (`--join`) with its labels.
 */
export const clusterOptions = {
  /** "data" runs tasks; "manager" forwards them to data nodes. */
  role: valueOption({ flag: "role", arg: "ROLE", default: (): ServeRole => "data", defaultHelp: "data", parse: role, help: "data (runs tasks) or manager (forwards them to data nodes)" }),
  /** Manager: data nodes it polls (the passive mode). */
  nodes: listOption({ flag: "node", arg: "URL", parse: baseUrl, help: "manager: a data node to poll and place tasks on" }),
  /** Data node: the manager it joins (the active mode); empty: none. */
  join: valueOption({ flag: "join", arg: "URL", default: () => "", parse: baseUrl, help: "data node: join the manager at URL and send it heartbeats" }),
  /** Data node: the token sent to the manager; empty: the node's own --token. */
  joinToken: valueOption({ flag: "join-token", arg: "T", env: "DRCE_JOIN_TOKEN", default: () => "", parse: text, help: "data node: the cluster token to join with (default: --token)" }),
  /** Data node: the URL the manager reaches it at; empty: its own listen address. */
  advertiseUrl: valueOption({ flag: "advertise-url", arg: "URL", default: () => "", parse: baseUrl, help: "data node: the URL the manager reaches it at (default: from --listen)" }),
  /** Data node: its labels, for targeting. */
  labels: listOption({ flag: "label", arg: "K=V", parse: label, help: "data node: a label for targeting, e.g. env=prod" }),
  /** Interval of heartbeats and polls, ms. */
  heartbeatMs: valueOption({ flag: "heartbeat-ms", arg: "N", default: () => 5000, defaultHelp: "5000", parse: integer(50), help: "heartbeat (data node) and poll (manager) interval" }),
  /** Manager: silence after which a node is down, ms; zero: three heartbeats. */
  nodeTimeoutMs: valueOption({ flag: "node-timeout-ms", arg: "N", default: () => 0, defaultHelp: "3 x --heartbeat-ms", parse: integer(), help: "manager: a node silent this long is down" }),
  /** Manager: the placement mode of a task that names none. */
  mode: valueOption({ flag: "mode", arg: "MODE", default: (): PlacementMode => "balanced", defaultHelp: "balanced", parse: mode, help: "manager: balanced, round-robin, random or all" }),
  /** PEM CA certificates trusted for the other side's certificate (a manager's nodes, a node's manager) over https://; empty: the system's. */
  clusterCa: valueOption({ flag: "cluster-ca", arg: "FILE", default: () => "", parse: optionalPath, help: "trust this PEM CA for the certificates of https:// nodes (manager) or of the manager (--join)" }),
  /** PEM client certificate presented to nodes (or to the manager) that require one (--tls-client-ca there). */
  clusterCert: valueOption({ flag: "cluster-cert", arg: "FILE", default: () => "", parse: optionalPath, help: "present this PEM client certificate to nodes or to the manager (needs --cluster-key)" }),
  /** The PEM private key of clusterCert. */
  clusterKey: valueOption({ flag: "cluster-key", arg: "FILE", default: () => "", parse: optionalPath, help: "the PEM private key of --cluster-cert" }),
  /** Manager: balanced weights of the usage figures; empty: load average only. */
  weights: valueOption({ flag: "weights", arg: "F=W,...", default: (): Readonly<Partial<Record<UsageFigure, number>>> => ({}), defaultHelp: "loadavg=1", parse: weights, help: "manager: balanced weights, e.g. loadavg=1,cpu=0.5" }),
};

/** The values of {@link clusterOptions}. */
export type ClusterOptions = OptionValues<typeof clusterOptions>;

/** The silence after which a manager takes a node for down: --node-timeout-ms, or three heartbeats. */
export function nodeTimeoutOf(options: Pick<ClusterOptions, "heartbeatMs" | "nodeTimeoutMs">): number {
  return options.nodeTimeoutMs > 0 ? options.nodeTimeoutMs : 3 * options.heartbeatMs;
}
