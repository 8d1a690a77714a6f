import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createRouteGate, type RouteGate } from "../src/route-gate.js";
import { until } from "./helpers/node.js";

let server: http.Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  server = undefined;
});

/** A listener bound with the gate as its handler, before any routes exist. */
async function listen(gate: RouteGate): Promise<string> {
  server = http.createServer(gate.handler);
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("the route gate of a listener bound before its routes", () => {
  it("holds a request that arrives before the routes and serves it once they are given, then serves later ones at once", async () => {
    const gate = createRouteGate();
    const url = await listen(gate);
    const early = fetch(`${url}/early`);
    await until(() => gate.held, (held) => held === 1, 10_000, "the early request to be held");
    gate.open((req, res) => res.end(`served ${req.url}`));
    expect(await (await early).text()).toBe("served /early");
    expect(await (await fetch(`${url}/late`)).text()).toBe("served /late");
    expect(gate.held).toBe(0);
  });

  it("answers held requests 503 when the node closes before its routes exist, and every later one too", async () => {
    const gate = createRouteGate();
    const url = await listen(gate);
    const early = fetch(`${url}/early`, { method: "POST", body: "ignored" });
    await until(() => gate.held, (held) => held === 1, 10_000, "the early request to be held");
    gate.close();
    const reply = await early;
    expect(reply.status).toBe(503);
    expect(reply.headers.get("retry-after")).toBe("1");
    expect(await reply.text()).toBe("the node is not serving\n");
    expect((await fetch(`${url}/late`)).status).toBe(503);
  });

  it("keeps the routes once given: a close after opening changes nothing", async () => {
    const gate = createRouteGate();
    const url = await listen(gate);
    gate.open((_req, res) => res.end("open"));
    gate.close();
    expect(await (await fetch(url)).text()).toBe("open");
  });
});
