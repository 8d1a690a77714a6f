import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { AdminHandler } from "./admin.js";
import type { AdminReply } from "./admin-reply.js";

/** The path prefix of the HTTP admin commands: `GET /drce/admin/<COMMAND>`. */
export const adminHttpPrefix = "/drce/admin/";

/**
 * Serves `GET /drce/admin/<COMMAND>[?handler=H&parameters=P]` with the admin handler's JSON
 * envelope: 200, 400 malformed, 404 unknown command, 405 other methods. The bearer token
 * check and the routing to this prefix are the caller's business. Never rejects.
 */
export async function handleAdminHttp(
  handler: AdminHandler,
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
): Promise<void> {
  const send = (reply: AdminReply, headers: Record<string, string> = {}): void => {
    if (res.headersSent || res.writableEnded) return;
    res.statusCode = reply.status;
    res.setHeader("content-type", "application/json");
    res.setHeader("cache-control", "no-store");
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    res.end(reply.body);
  };
  req.resume();
  if (req.method !== "GET" && req.method !== "HEAD") {
    send(handler.failure("method_not_allowed", `method ${req.method ?? ""} is not allowed; use GET`), { allow: "GET" });
    return;
  }
  const url = new URL(req.url ?? "/", "http://node.invalid");
  let command: string;
  try {
    // "/drce/admin" without the slash is routed here too, and names no command.
    command = decodeURIComponent(url.pathname.slice(adminHttpPrefix.length));
  } catch {
    send(handler.failure("malformed", "the command in the path is not valid percent-encoding"));
    return;
  }
  if (command === "" || command.includes("/") || command.includes("\t")) {
    send(handler.failure("malformed", "expected GET /drce/admin/<COMMAND>"));
    return;
  }
  send(await handler.run({ handler: url.searchParams.get("handler") ?? "Admin", command, parameters: url.searchParams.get("parameters") ?? "" }));
}
