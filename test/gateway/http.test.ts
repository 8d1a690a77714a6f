import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { DrceError } from "../../src/domain/errors.js";
import { handleLegacyHttp } from "../../src/gateway/http.js";
import { createLegacyHandler, type LegacyHandler } from "../../src/gateway/legacy-handler.js";
import { createFakeCore, testIdentity, type FakeBehaviour } from "./fake-core.js";
import { legacyRequest } from "./legacy-request-encoder.js";

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
});

async function startHttp1(handler: LegacyHandler, maxBodyBytes = 4096): Promise<string> {
  const server = http.createServer((req, res) => void handleLegacyHttp(handler, req, res, { maxBodyBytes }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/drce`;
}

function handlerWith(behaviour: FakeBehaviour = {}): LegacyHandler {
  return createLegacyHandler({ core: createFakeCore(behaviour), identity: testIdentity });
}

const checkBody = JSON.stringify(legacyRequest(1, 567, { type: 1 }));

describe("legacy HTTP endpoint", () => {
  it("answers POST with a JSON array and status 200", async () => {
    const url = await startHttp1(handlerWith());
    const res = await fetch(url, { method: "POST", body: checkBody });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toMatchObject([{ id: 567, state: 0, type: 1 }]);
  });

  it("answers protocol errors as items with status 200", async () => {
    const url = await startHttp1(handlerWith());
    const res = await fetch(url, { method: "POST", body: "{not json" });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject([{ error_code: 1, state: 6 }]);
  });

  it("refuses other methods with 405 and a JSON error item", async () => {
    const url = await startHttp1(handlerWith());
    const res = await fetch(url);
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
    expect(await res.json()).toMatchObject([{ error_code: 103 }]);
  });

  it("refuses a body declared too large with 413 before reading it", async () => {
    const url = await startHttp1(handlerWith(), 100);
    const res = await fetch(url, { method: "POST", body: "x".repeat(5000) });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject([{ error_code: 103, error_message: "the request body is larger than 100 bytes" }]);
  });

  it("refuses a chunked body that grows too large with 413", async () => {
    const url = await startHttp1(handlerWith(), 100);
    const { port } = new URL(url);
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, path: "/drce", method: "POST", headers: { "transfer-encoding": "chunked" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.write("y".repeat(80));
      setImmediate(() => req.end("y".repeat(80)));
    });
    expect(status).toBe(413);
  });

  it("sets Retry-After when the node is out of capacity", async () => {
    const url = await startHttp1(
      handlerWith({
        submit: () => {
          throw new DrceError("exhausted", "queue full", { retryAfterMs: 2500 });
        },
      }),
    );
    const res = await fetch(url, { method: "POST", body: JSON.stringify(legacyRequest(0, 1, { command: "x" })) });
    expect(res.status).toBe(200);
    expect(res.headers.get("retry-after")).toBe("3");
    expect(await res.json()).toMatchObject([{ error_code: 119, state: 6 }]);
  });

  it("aborts the wait for a sync task when the client goes away", async () => {
    let seen: AbortSignal | undefined;
    const url = await startHttp1(
      handlerWith({
        submit: (_spec, signal) => {
          seen = signal;
          return new Promise((_resolve, reject) => signal?.addEventListener("abort", () => reject(new DrceError("unavailable", "the call was cancelled"))));
        },
      }),
    );
    const controller = new AbortController();
    const pending = fetch(url, { method: "POST", body: JSON.stringify(legacyRequest(0, 1, { command: "sleep 100" })), signal: controller.signal }).catch(() => undefined);
    const deadline = Date.now() + 5000;
    while (seen === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    await pending;
    while (seen?.aborted !== true && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(seen?.aborted).toBe(true);
  });

  it("serves HTTP/2 too", async () => {
    const server = http2.createServer((req, res) => void handleLegacyHttp(handlerWith(), req, res, { maxBodyBytes: 4096 }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    closers.push(async () => {
      client.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const post = (body: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const stream = client.request({ ":method": "POST", ":path": "/drce" });
        let status = 0;
        let text = "";
        stream.on("response", (headers) => (status = Number(headers[":status"])));
        stream.setEncoding("utf8");
        stream.on("data", (chunk: string) => (text += chunk));
        stream.on("end", () => resolve({ status, body: text }));
        stream.on("error", reject);
        stream.end(body);
      });
    const ok = await post(checkBody);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject([{ id: 567 }]);
    const big = await post("z".repeat(5000));
    expect(big.status).toBe(413);
  });
});
