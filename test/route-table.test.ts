import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenCheck } from "../src/auth.js";
import { createBrowserGuard } from "../src/browser-guard.js";
import { connectRefusals, metricsRefusals } from "../src/refusal-forms.js";
import { createRouteTable, type Route } from "../src/route-table.js";

const token = "route-table-token";
const listedOrigin = "https://console.example.com";
/** The routes whose handler ran, in order: a refused request must add nothing. */
const served: string[] = [];

const answering = (name: string): Route["handle"] => (req, res) => {
  served.push(name);
  req.resume();
  res.setHeader("content-type", "text/plain");
  res.end(`${name} served\n`);
};

const routes: Route[] = [
  { name: "metrics", matches: (path) => path === "/metrics", protocol: metricsRefusals(), guard: "token", handle: answering("metrics") },
  { name: "probe", matches: (path) => path.startsWith("/probe/"), protocol: connectRefusals(), guard: "open", handle: answering("probe") },
  { name: "connect", matches: (path) => path.startsWith("/drce.v1."), protocol: connectRefusals(), guard: "in-protocol", handle: answering("connect") },
  { name: "connect-guarded", matches: (path) => path.startsWith("/guarded/"), protocol: connectRefusals(), guard: "token", handle: answering("connect-guarded") },
  // Never reached for /metrics: the first route that matches a path serves it.
  { name: "everything", matches: (path) => path !== "/unrouted", protocol: metricsRefusals(), guard: "open", handle: answering("everything") },
];

let server: http.Server;
let port = 0;

beforeAll(async () => {
  const handler = createRouteTable({
    routes,
    browserGuard: createBrowserGuard({ listenHost: "127.0.0.1", allowHosts: [], corsOrigins: [listedOrigin], secure: false }),
    checkToken: createTokenCheck(token),
  });
  server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** One request over a fresh connection, with the headers given (Host defaults to the node's address). */
async function request(path: string, headers: Record<string, string> = {}, method = "GET"): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the route table", () => {
  it("refuses a token route without the token in the route's own form (401, www-authenticate), and never runs its handler", async () => {
    const before = served.length;
    const reply = await request("/metrics");
    expect(reply.status).toBe(401);
    expect(reply.headers["www-authenticate"]).toBe("Bearer");
    expect(reply.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(reply.body).toBe("missing or wrong bearer token\n");
    const wrong = await request("/metrics", { authorization: `Bearer ${token}x` });
    expect(wrong.status).toBe(401);
    expect(served.length).toBe(before);
  });

  it("writes a Connect route's token refusal with the gRPC status and the legacy code besides the JSON body", async () => {
    const reply = await request("/guarded/Method", {}, "POST");
    expect(reply.status).toBe(401);
    expect(reply.headers["grpc-status"]).toBe("16");
    expect(reply.headers["drce-error-code"]).toBe("104");
    expect(JSON.parse(reply.body)).toEqual({ code: "unauthenticated", message: "missing or wrong bearer token" });
  });

  it("serves a token route with the right token, the first matching route winning", async () => {
    const reply = await request("/metrics", { authorization: `Bearer ${token}` });
    expect(reply).toMatchObject({ status: 200, body: "metrics served\n" });
    expect(served.at(-1)).toBe("metrics");
  });

  it("lets an open route through without a token", async () => {
    const reply = await request("/probe/check");
    expect(reply).toMatchObject({ status: 200, body: "probe served\n" });
  });

  it("hands an in-protocol route its request without a token: its handler checks the token in its own encoding", async () => {
    const reply = await request("/drce.v1.TaskService/ListTasks", {}, "POST");
    expect(reply).toMatchObject({ status: 200, body: "connect served\n" });
  });

  it("runs the browser guard before the token: a foreign Host gets 421 in the route's form, not 401, and the connection is closed", async () => {
    const before = served.length;
    const metrics = await request("/metrics", { host: "attacker.example" });
    expect(metrics.status).toBe(421);
    expect(metrics.headers["connection"]).toBe("close");
    expect(metrics.headers["www-authenticate"]).toBeUndefined();
    expect(metrics.body).toMatch(/^this node does not answer to the host name "attacker.example"/);
    // Even an open route and a right token do not get past it.
    const probe = await request("/probe/check", { host: "attacker.example", authorization: `Bearer ${token}` });
    expect(probe.status).toBe(421);
    expect(probe.headers["grpc-status"]).toBe("7");
    expect(JSON.parse(probe.body)).toMatchObject({ code: "permission_denied" });
    expect(served.length).toBe(before);
  });

  it("refuses a page of another origin with 403 on every route, the in-protocol ones included", async () => {
    const before = served.length;
    const reply = await request("/drce.v1.TaskService/ListTasks", { origin: "https://evil.example", authorization: `Bearer ${token}` }, "POST");
    expect(reply.status).toBe(403);
    expect(reply.headers["grpc-status"]).toBe("7");
    expect(JSON.parse(reply.body)).toMatchObject({ code: "permission_denied", message: expect.stringContaining("--cors-origin https://evil.example") });
    expect(served.length).toBe(before);
  });

  it("answers a listed origin's preflight with 204 and its CORS headers, running nothing, and adds the CORS headers to its calls", async () => {
    const before = served.length;
    const preflight = await request("/metrics", { origin: listedOrigin, "access-control-request-method": "POST" }, "OPTIONS");
    expect(preflight.status).toBe(204);
    expect(preflight.headers["access-control-allow-origin"]).toBe(listedOrigin);
    expect(served.length).toBe(before);
    // The token refusal of a listed page carries the CORS headers, so the page can read it.
    const refused = await request("/metrics", { origin: listedOrigin });
    expect(refused.status).toBe(401);
    expect(refused.headers["access-control-allow-origin"]).toBe(listedOrigin);
    expect(refused.headers["access-control-expose-headers"]).toContain("www-authenticate");
  });

  it("answers a path no route serves with 404 naming it", async () => {
    const reply = await request("/unrouted?x=1");
    expect(reply).toMatchObject({ status: 404, body: "no route serves /unrouted\n" });
  });

  it("needs at least one route", () => {
    expect(() => createRouteTable({ routes: [], browserGuard: () => ({ kind: "pass", headers: {} }), checkToken: () => true })).toThrow("at least one route");
  });
});
