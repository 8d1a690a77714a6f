import type { DualHandler } from "./http-server.js";

/** What {@link createRouteGate} returns. */
export interface RouteGate {
  /** The listener's handler: passes each request to the routes, or holds it until they exist. */
  readonly handler: DualHandler;
  /** Gives the routes: the held requests are served, in arrival order, and every later one at once. */
  open(routes: DualHandler): void;
  /** How many requests are held now. */
  readonly held: number;
  /** Answers the held requests, and any later one, 503 when the routes never came (a start that failed). */
  close(): void;
}

/**
 * The HTTP handler of a listener bound before its routes exist: a request waits until `open`
 * gives the routes, and is answered 503 when the node closes before that.
 */
export function createRouteGate(): RouteGate {
  let routes: DualHandler | undefined;
  const waiting: Parameters<DualHandler>[] = [];
  const unavailable: DualHandler = (req, res) => {
    req.resume();
    res.writeHead(503, { "content-type": "text/plain; charset=utf-8", "retry-after": "1" });
    res.end("the node is not serving\n");
  };
  const release = (handler: DualHandler): void => {
    routes = handler;
    for (const [req, res] of waiting.splice(0)) handler(req, res);
  };
  return {
    handler: (req, res) => {
      if (routes !== undefined) routes(req, res);
      else waiting.push([req, res]);
    },
    get held() {
      return waiting.length;
    },
    open: release,
    close() {
      if (routes === undefined) release(unavailable);
    },
  };
}
