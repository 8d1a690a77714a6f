import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ErrorCode } from "./domain/errors.js";
import type { AdminHandler } from "./gateway/admin.js";
import type { LegacyHandler } from "./gateway/legacy-handler.js";
import type { RouteProtocol, RouteResponse } from "./route-table.js";

/**
 * The legacy `POST /drce` form: a JSON array of one legacy error item. A browser refusal
 * carries error 104 (the task was not created); a missing token carries no error code, as the
 * original nodes answered it.
 */
export function legacyRefusals(legacy: Pick<LegacyHandler, "errorReply">): RouteProtocol {
  return {
    name: "legacy",
    refuse(res, refusal, headers) {
      const reply = legacy.errorReply(refusal.kind === "forbidden" ? ErrorCode.CreateTask : 0, refusal.message);
      send(res, refusal.status, { "content-type": "application/json", ...headers }, reply.body);
    },
  };
}

/** The `GET /metrics` form: the sentence as one line of text, which a scraper logs. */
export function metricsRefusals(): RouteProtocol {
  return {
    name: "metrics",
    refuse(res, refusal, headers) {
      send(res, refusal.status, { "content-type": "text/plain; charset=utf-8", ...headers }, `${refusal.message}\n`);
    },
  };
}

/** The `GET /drce/admin/<COMMAND>` form: the admin JSON envelope with its error code. */
export function adminRefusals(admin: Pick<AdminHandler, "failure">): RouteProtocol {
  return {
    name: "admin",
    refuse(res, refusal, headers) {
      const reply = admin.failure(refusal.kind, refusal.message);
      send(res, refusal.status, { "content-type": "application/json", ...headers }, reply.body);
    },
  };
}

/**
 * The Connect form of a refusal written before the framework sees the request: Connect
 * clients read the JSON body, gRPC and gRPC-Web clients the status headers, and every caller
 * the legacy code in `drce-error-code`.
 */
export function connectRefusals(): RouteProtocol {
  return {
    name: "connect",
    refuse(res, refusal, headers) {
      const code = refusal.kind === "forbidden" ? Code.PermissionDenied : Code.Unauthenticated;
      send(res, refusal.status, {
        "content-type": "application/json",
        "drce-error-code": String(ErrorCode.CreateTask),
        "grpc-status": String(code),
        "grpc-message": encodeURIComponent(refusal.message),
        ...headers,
      }, JSON.stringify({ code: refusal.kind === "forbidden" ? "permission_denied" : "unauthenticated", message: refusal.message }));
    },
  };
}

/**
 * The token check of the Connect routes, as an interceptor: the framework then encodes the
 * Unauthenticated error for each wire (a Connect unary body, a Connect end-of-stream message,
 * gRPC and gRPC-Web trailers), which is what each caller reads. Services listed in
 * `openServices` (health) pass without the token. It must come before every other
 * interceptor, so that an unauthenticated caller learns nothing about its request.
 */
export function createConnectTokenCheck(checkToken: (authorization: string | null) => boolean, openServices: readonly string[]): Interceptor {
  const open = new Set(openServices);
  return (next) => async (request) => {
    if (open.has(request.service.typeName)) return next(request);
    if (!checkToken(request.header.get("authorization"))) throw new ConnectError("missing or wrong bearer token", Code.Unauthenticated);
    return next(request);
  };
}

/**
 * Sends a whole refusal at once. The headers are set one by one rather than with `writeHead`,
 * so that the body goes out with a Content-Length, not chunked: a legacy caller reads it raw.
 */
function send(res: RouteResponse, status: number, headers: Readonly<Record<string, string>>, body: string): void {
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.end(body);
}
