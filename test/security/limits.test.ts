import { connect as netConnect, type Socket } from "node:net";
import { rm } from "node:fs/promises";
import { connect as tlsConnect } from "node:tls";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskSpecSchema } from "../../gen/drce/v1/task_pb.js";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { createDualServer, type DualServer } from "../../src/http-server.js";
import { startNode, until, type TestNode } from "../helpers/node.js";
import { makeTestPki, type TestPki } from "./certs.js";
import { clientFor } from "./clients.js";

const token = "limits-token";
const maxRequestBytes = 64 * 1024;
let node: TestNode;

beforeAll(async () => {
  node = await startNode({ token, maxRequestBytes });
});
afterAll(async () => {
  await node.stop();
});

describe("request bodies are bounded", () => {
  for (const protocol of ["connect", "grpc"] as const) {
    it(`refuses a ${protocol} request larger than --max-request-bytes with ResourceExhausted, and runs nothing`, async () => {
      const { client, close } = clientFor(TaskService, node.url, { token, protocol });
      try {
        const big = create(TaskSpecSchema, { id: `too-big-${protocol}`, command: "cat", input: new Uint8Array(maxRequestBytes * 2) });
        const error = await client.submitTask({ task: big }).then(() => undefined, (e: unknown) => ConnectError.from(e));
        expect(error?.code).toBe(Code.ResourceExhausted);
        await expect(client.getTask({ task: `too-big-${protocol}` })).rejects.toMatchObject({ code: Code.NotFound });
        // Just under the limit goes through.
        const fits = create(TaskSpecSchema, { command: "wc -c", input: new Uint8Array(maxRequestBytes - 1024) });
        const { result } = await client.submitTask({ task: fits });
        expect(new TextDecoder().decode(result?.stdout).trim()).toBe(String(maxRequestBytes - 1024));
      } finally {
        close();
      }
    });
  }

  it("refuses a legacy POST /drce body larger than the limit with 413 before parsing it", async () => {
    const body = JSON.stringify({ type: 0, id: 1, data: "A".repeat(maxRequestBytes * 2) });
    const reply = await fetch(`${node.url}/drce`, { method: "POST", body, headers: { authorization: `Bearer ${token}` } });
    expect(reply.status).toBe(413);
    expect(await reply.json()).toMatchObject([{ error_message: `the request body is larger than ${maxRequestBytes} bytes` }]);
  });

  it("checks the token before reading a large legacy body: 401, not 413", async () => {
    const reply = await fetch(`${node.url}/drce`, { method: "POST", body: "A".repeat(maxRequestBytes * 2) });
    expect(reply.status).toBe(401);
  });
});

describe("header and connection timeouts", () => {
  let pki: TestPki;
  const servers: DualServer[] = [];
  const sockets: Socket[] = [];
  beforeAll(() => {
    pki = makeTestPki();
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await Promise.all(servers.map((s) => s.close()));
    await rm(pki.dir, { recursive: true, force: true });
  });

  async function start(tls: boolean): Promise<number> {
    const server = createDualServer({
      handler: (_req, res) => res.end("ok"),
      headersTimeoutMs: 400,
      ...(tls ? { tls: { cert: pki.read(pki.serverCert), key: pki.read(pki.serverKey) } } : {}),
    });
    servers.push(server);
    return (await server.listen("127.0.0.1", 0)).port;
  }

  /** Opens a connection and reports when the server closes it, and what it sent before. */
  function watch(socket: Socket): { closed: () => boolean; received: () => string } {
    sockets.push(socket);
    let closed = false;
    let received = "";
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    socket.on("error", () => undefined);
    socket.on("close", () => (closed = true));
    return { closed: () => closed, received: () => received };
  }

  it("drops a cleartext connection that sends nothing", async () => {
    const port = await start(false);
    const probe = watch(netConnect(port, "127.0.0.1"));
    await until(() => probe.closed(), (closed) => closed, 20_000, "the silent connection to be closed");
  });

  it("answers HTTP/1.1 headers that never finish with 408 and closes the connection", async () => {
    const port = await start(false);
    const socket = netConnect(port, "127.0.0.1");
    const probe = watch(socket);
    socket.write("POST /drce HTTP/1.1\r\nhost: x\r\nx-slow: ");
    await until(() => probe.closed(), (closed) => closed, 20_000, "the slow connection to be closed");
    expect(probe.received()).toMatch(/^HTTP\/1\.1 408/);
  });

  it("drops a TLS connection that never starts its handshake", async () => {
    const port = await start(true);
    const probe = watch(netConnect(port, "127.0.0.1"));
    await until(() => probe.closed(), (closed) => closed, 20_000, "the silent TLS connection to be closed");
  });

  it("answers HTTP/1.1 headers over TLS that never finish with 408", async () => {
    const port = await start(true);
    const socket = tlsConnect({ port, host: "127.0.0.1", ca: pki.read(pki.ca), ALPNProtocols: ["http/1.1"] });
    const probe = watch(socket);
    socket.once("secureConnect", () => socket.write("GET / HTTP/1.1\r\nhost: x\r\nx-slow: "));
    await until(() => probe.closed(), (closed) => closed, 20_000, "the slow TLS connection to be closed");
    expect(probe.received()).toMatch(/^HTTP\/1\.1 408/);
  });

  it("still serves a prompt request", async () => {
    const port = await start(false);
    const reply = await fetch(`http://127.0.0.1:${port}/`);
    expect(await reply.text()).toBe("ok");
  });
});
