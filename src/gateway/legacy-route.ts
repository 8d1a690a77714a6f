import { unsupportedMode } from "../cluster/placement.js";
import { DrceError, ErrorCode } from "../domain/errors.js";
import { usageFigures, type Placement, type PlacementMode, type UsageFigure } from "../domain/placement.js";

/**
 * The route roles of the original DRCE clients and the placement mode each means:
 * 0 all (shard: every node runs the task), 1 round robin, 4 random, 5 by resource usage.
 */
export const legacyRouteRoles: Readonly<Record<number, PlacementMode>> = {
  0: "all",
  1: "round-robin",
  4: "random",
  5: "balanced",
};

/** Where a legacy request's route came from: the ZeroMQ frame after the body, and the request's own fields. */
export interface LegacyRouteSource {
  /** The third ZeroMQ frame (`[id, body, route]`), when one was sent. */
  readonly frame?: Uint8Array | string;
  /** The `route` field of the cover or of the request body, as decoded JSON (an object, or its JSON text). */
  readonly field?: unknown;
  /** The cover's `ttl`, ms: how long a fan-out gathers the nodes' replies. */
  readonly coverTtlMs?: number;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The placement a legacy request asks for, or undefined when it names none. The route is
 * `{"role", "nodes", "alg", "alg_weight", "limits"}`, as JSON text in the ZeroMQ frame after the
 * body (the frame wins when both are sent) or as `route` in the cover or the HTTP body; a
 * positive cover `ttl` bounds the gathering of a fan-out (`gatherTimeoutMs`).
 *
 * - `role`: see {@link legacyRouteRoles}; missing takes the manager's --mode; any other value is
 *   carried as a mode the placer refuses with 5001 (node mode not supported).
 * - `nodes`: node names, an array or a comma-separated string; empty names are dropped (the
 *   original tests send `[""]` for "every node").
 * - `alg_weight`, `limits`: comma-separated numbers in the order of the balancing string
 *   (cpu, iowait, vram, rram, disk, processes, threads, loadavg), or an array of them; weights
 *   all zero mean none (the manager's --weights); a limit of zero means no bound on that figure,
 *   as zero means "none" in every limit of the protocol.
 * - `alg`: an integer, accepted and not used: drce balances with one algorithm, the weighted sum.
 * - other keys (the Python client's `task_type`) are ignored.
 *
 * Throws DrceError: a route that is not JSON, not UTF-8 or not an object is error 1 (parse
 * error, as the gateway answers a body that is not JSON), a malformed field error 103.
 */
export function decodeLegacyRoute(source: LegacyRouteSource): Placement | undefined {
  const route = routeObject(source);
  const ttl = source.coverTtlMs !== undefined && Number.isFinite(source.coverTtlMs) && source.coverTtlMs > 0 ? Math.floor(source.coverTtlMs) : 0;
  if (route === undefined) return ttl > 0 ? { gatherTimeoutMs: ttl } : undefined;
  const mode = roleMode(route["role"]);
  const nodes = nodeNames(route["nodes"]);
  readAlg(route["alg"]);
  const weights = figureList(route["alg_weight"], "alg_weight");
  const limits = figureList(route["limits"], "limits");
  const positiveLimits = Object.fromEntries(Object.entries(limits).filter(([, bound]) => bound > 0)) as Partial<Record<UsageFigure, number>>;
  const anyWeight = Object.values(weights).some((weight) => weight > 0);
  return {
    ...(mode === undefined ? {} : { mode }),
    ...(nodes.length === 0 ? {} : { nodes }),
    ...(anyWeight ? { weights } : {}),
    ...(Object.keys(positiveLimits).length === 0 ? {} : { limits: positiveLimits }),
    ...(ttl > 0 ? { gatherTimeoutMs: ttl } : {}),
  };
}

function routeObject(source: LegacyRouteSource): Record<string, unknown> | undefined {
  if (source.frame !== undefined) {
    let text: string;
    try {
      text = typeof source.frame === "string" ? source.frame : strictUtf8.decode(source.frame);
    } catch {
      throw parseError("the route is not valid UTF-8");
    }
    // The PHP client sends no frame for an empty route; an empty frame means the same.
    if (text.trim() !== "") return parseRoute(text);
  }
  const field = source.field;
  if (field === undefined || field === null || field === "") return undefined;
  if (typeof field === "string") return field.trim() === "" ? undefined : parseRoute(field);
  if (!isObject(field)) throw parseError("the route is not a JSON object");
  return field;
}

function parseRoute(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw parseError("the route is not valid JSON");
  }
  if (!isObject(value)) throw parseError("the route is not a JSON object");
  return value;
}

function roleMode(role: unknown): PlacementMode | undefined {
  if (role === undefined || role === null) return undefined;
  const number = typeof role === "number" ? role : typeof role === "string" && /^-?\d+$/.test(role.trim()) ? Number(role) : Number.NaN;
  const mode = Number.isInteger(number) ? legacyRouteRoles[number] : undefined;
  return mode ?? unsupportedMode(`legacy route role ${JSON.stringify(role)}`);
}

/** PHP encodes an empty array as `[]`, and an emptied associative one as `{}`: both mean none. */
function isEmptyObject(value: unknown): boolean {
  return isObject(value) && Object.keys(value).length === 0;
}

function nodeNames(nodes: unknown): string[] {
  if (nodes === undefined || nodes === null || isEmptyObject(nodes)) return [];
  const names = typeof nodes === "string" ? nodes.split(",") : Array.isArray(nodes) ? nodes : undefined;
  if (names === undefined) throw badInput("route.nodes must be an array of node names");
  return names
    .map((name, index) => {
      if (typeof name !== "string") throw badInput(`route.nodes[${index}] must be a node name (a string)`);
      return name.trim();
    })
    .filter((name) => name !== "");
}

function readAlg(alg: unknown): void {
  if (alg === undefined || alg === null) return;
  const number = typeof alg === "string" && /^-?\d+$/.test(alg.trim()) ? Number(alg) : alg;
  if (!Number.isInteger(number)) throw badInput(`route.alg must be an integer, not ${JSON.stringify(alg)}`);
}

function figureList(value: unknown, field: string): Partial<Record<UsageFigure, number>> {
  if (value === undefined || value === null || value === "" || isEmptyObject(value)) return {};
  const items: unknown[] | undefined = typeof value === "string" ? value.split(",") : Array.isArray(value) ? value : undefined;
  if (items === undefined) throw badInput(`route.${field} must be a comma-separated list of numbers (${usageFigures.join(",")})`);
  if (items.length > usageFigures.length) throw badInput(`route.${field} has ${items.length} values; at most ${usageFigures.length} (${usageFigures.join(",")})`);
  const out: Partial<Record<UsageFigure, number>> = {};
  items.forEach((item, index) => {
    const number = typeof item === "number" ? item : typeof item === "string" && item.trim() !== "" ? Number(item) : Number.NaN;
    const figure = usageFigures[index]!;
    if (!Number.isFinite(number) || number < 0) throw badInput(`route.${field}: the ${figure} value must be a number zero or greater, not ${JSON.stringify(item)}`);
    out[figure] = number;
  });
  return out;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseError(message: string): DrceError {
  return new DrceError("invalid", message, { legacyCode: ErrorCode.Parse });
}

function badInput(message: string): DrceError {
  return new DrceError("invalid", message, { legacyCode: ErrorCode.BadInput });
}
