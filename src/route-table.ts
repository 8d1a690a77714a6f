import type { BrowserVerdict, GuardedRequest } from "./browser-guard.js";
import type { DualHandler } from "./http-server.js";

/** One HTTP request as a route reads it, HTTP/1.1 or HTTP/2. */
export type RouteRequest = Parameters<DualHandler>[0];
/** The reply of one HTTP request, HTTP/1.1 or HTTP/2. */
export type RouteResponse = Parameters<DualHandler>[1];

/** Why a request was refused before its handler ran. */
export interface Refusal {
  /** "forbidden": the browser guard refused it (foreign Host or Origin); "unauthenticated": no right token. */
  readonly kind: "forbidden" | "unauthenticated";
  /** The HTTP status: 421 or 403 from the browser guard, 401 for the token. */
  readonly status: number;
  /** One sentence saying what was refused and why. */
  readonly message: string;
}

/** A protocol the node speaks over HTTP, as far as refusing a request goes. */
export interface RouteProtocol {
  /** The protocol's name, for logs and tests ("legacy", "metrics", "admin", "connect"). */
  readonly name: string;
  /**
   * Writes a refusal in the form this protocol's callers read (a legacy error item, a line of
   * text, an admin envelope, a Connect error with its gRPC status). Sets status and headers and
   * ends the reply; the route table adds the headers every refusal carries.
   */
  refuse(res: RouteResponse, refusal: Refusal, headers: Readonly<Record<string, string>>): void;
}

/**
 * Who may call a route:
 * - "token": the route table checks the bearer token and refuses in the route's protocol;
 * - "open": anyone who passed the browser guard (health probes of load balancers);
 * - "in-protocol": the handler checks the token itself, because its callers read a refusal only
 *   in the framework's own encoding of each wire (Connect, gRPC and gRPC-Web for the same path),
 *   and because some of its services are open (see {@link createConnectTokenCheck}).
 */
export type RouteGuard = "token" | "open" | "in-protocol";

/** One entry of the route table. */
export interface Route {
  /** What the route serves, for logs and tests. */
  readonly name: string;
  /** Whether a request path (without its query) belongs to this route. */
  readonly matches: (path: string) => boolean;
  /** How a refused request on this route is answered. */
  readonly protocol: RouteProtocol;
  /** Who may call it. */
  readonly guard: RouteGuard;
  /** Serves a request that passed the guards. Must not throw. */
  readonly handle: (req: RouteRequest, res: RouteResponse, path: string) => void;
}

/** Options of {@link createRouteTable}. */
export interface RouteTableOptions {
  /** The routes, the first that matches a path serves it; the last usually matches every path. */
  readonly routes: readonly Route[];
  /** The Host/Origin check every request passes first (see createBrowserGuard). */
  readonly browserGuard: (request: GuardedRequest) => BrowserVerdict;
  /** Whether an Authorization header carries the node's token (true for every header when none is set). */
  readonly checkToken: (authorization: string | undefined) => boolean;
}

/**
 * The node's HTTP entry point: every request passes the browser guard first (before any work,
 * the token included: a page of another site or a rebound host name gets nothing), then its
 * route's guard, then its handler. Refusals are written by the route's protocol, so each caller
 * reads them in its own form; this is the one place that decides to refuse.
 */
export function createRouteTable(options: RouteTableOptions): DualHandler {
  const { routes, browserGuard, checkToken } = options;
  if (routes.length === 0) throw new TypeError("createRouteTable: at least one route is required");
  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const route = routes.find((candidate) => candidate.matches(path));
    if (route === undefined) {
      req.resume();
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end(`no route serves ${path}\n`);
      return;
    }
    const verdict = browserGuard(req);
    if (verdict.kind === "refuse") {
      // The body is never read: an HTTP/1.1 connection must not parse it as the next request.
      // HTTP/2 has no connection header, and its session outlives a refused stream.
      route.protocol.refuse(res, { kind: "forbidden", status: verdict.status, message: verdict.message }, req.httpVersionMajor === 2 ? {} : { connection: "close" });
      return;
    }
    if (verdict.kind === "preflight") {
      res.writeHead(204, verdict.headers);
      res.end();
      return;
    }
    for (const [name, value] of Object.entries(verdict.headers)) res.setHeader(name, value);
    if (route.guard === "token" && !checkToken(headerValue(req.headers["authorization"]))) {
      // Answered before the body is read (a large body gets 401, not 413); what is left of it
      // is read out so that the connection can carry the next request.
      route.protocol.refuse(res, { kind: "unauthenticated", status: 401, message: "missing or wrong bearer token" }, { "www-authenticate": "Bearer" });
      req.resume();
      return;
    }
    route.handle(req, res, path);
  };
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
