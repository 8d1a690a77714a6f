import http2 from "node:http2";
import { connect as netConnect, type Socket } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { createDualServer, type DualHandler, type DualServer } from "../../src/http-server.js";
import { until } from "../helpers/node.js";

/*
 * HTTP/2 peers that stall, held to the bounds HTTP/1.1 peers have: a cut-short preface,
 * a session that never sends SETTINGS, a session left idle, a request body that never ends,
 * and more connections than the cap. Each server here has bounds of a fraction of a second.
 */

const headersTimeoutMs = 300;
const requestTimeoutMs = 600;
const idleTimeoutMs = 600;
const servers: DualServer[] = [];
const sockets: Socket[] = [];
const sessions: http2.ClientHttp2Session[] = [];

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  for (const session of sessions) session.destroy();
  await Promise.all(servers.map((s) => s.close()));
});

/** A handler that answers once the request body is in, or streams a reply on /stream. */
const handler: DualHandler = (req, res) => {
  if (req.url === "/stream") {
    // Streams a reply after the request is in, slower than requestTimeoutMs.
    req.resume();
    req.once("end", () => {
      res.writeHead(200);
      (res as unknown as NodeJS.WritableStream).write("first\n");
    });
    return;
  }
  req.resume();
  req.once("end", () => res.end("ok"));
};

async function start(extra: { maxConnections?: number; headersTimeoutMs?: number } = {}): Promise<string> {
  const server = createDualServer({ handler, headersTimeoutMs, requestTimeoutMs: Math.max(requestTimeoutMs, extra.headersTimeoutMs ?? 0), idleTimeoutMs, streamingRequestPaths: new Set(["/stdin"]), ...extra });
  servers.push(server);
  const { port } = await server.listen("127.0.0.1", 0);
  return `http://127.0.0.1:${port}`;
}

/** A raw connection that reports when the server closes it. */
function rawConnection(url: string): { socket: Socket; closed: () => boolean } {
  const socket = netConnect(Number(new URL(url).port), "127.0.0.1");
  sockets.push(socket);
  let closed = false;
  socket.on("error", () => undefined);
  socket.on("close", () => (closed = true));
  // Reads whatever the server sends, so that its closing is seen.
  socket.resume();
  return { socket, closed: () => closed };
}

function session(url: string): { session: http2.ClientHttp2Session; closed: () => boolean; goaway: () => boolean } {
  const s = http2.connect(url);
  sessions.push(s);
  let closed = false;
  let goaway = false;
  s.on("error", () => undefined);
  s.on("goaway", () => (goaway = true));
  s.on("close", () => (closed = true));
  return { session: s, closed: () => closed, goaway: () => goaway };
}

/** Opens a POST whose body is started and never finished; reports its status and whether it closed. */
function unfinished(s: http2.ClientHttp2Session, path: string): { status: () => number; closed: () => boolean; body: () => string } {
  const stream = s.request({ ":method": "POST", ":path": path });
  let status = 0;
  let closed = false;
  let body = "";
  stream.on("response", (headers) => (status = Number(headers[":status"])));
  stream.on("data", (chunk: Buffer) => (body += chunk.toString()));
  stream.on("error", () => undefined);
  stream.on("close", () => (closed = true));
  stream.write("part of a body");
  return { status: () => status, closed: () => closed, body: () => body };
}

describe.concurrent("HTTP/2 connections are bounded like HTTP/1.1 ones", () => {
  it("drops a cleartext connection whose HTTP/2 preface is cut short", async () => {
    const url = await start();
    for (const part of ["P", "PRI * HTTP/2.0\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n"]) {
      const probe = rawConnection(url);
      probe.socket.write(part);
      await until(() => probe.closed(), (closed) => closed, 10_000, `the connection that sent ${JSON.stringify(part)} to be closed`);
    }
  });

  it("drops a session whose peer sends the preface but never its SETTINGS", async () => {
    const url = await start();
    const probe = rawConnection(url);
    probe.socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    await until(() => probe.closed(), (closed) => closed, 10_000, "the session without SETTINGS to be closed");
  });

  it("still routes an HTTP/1.1 POST that arrives a byte at a time (its \"P\" begins the preface too)", async () => {
    const url = await start();
    const probe = rawConnection(url);
    let received = "";
    probe.socket.on("data", (chunk: Buffer) => (received += chunk.toString()));
    const request = "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    for (const byte of request) probe.socket.write(byte);
    await until(() => received, (text) => text.endsWith("ok"), 10_000, "the HTTP/1.1 answer");
    expect(received).toMatch(/^HTTP\/1\.1 200/);
  });

  it("closes a session left idle with GOAWAY, after serving it", async () => {
    const url = await start();
    const client = session(url);
    const reply = await new Promise<string>((resolve, reject) => {
      const stream = client.session.request({ ":method": "GET", ":path": "/" });
      let body = "";
      stream.on("data", (chunk: Buffer) => (body += chunk.toString()));
      stream.on("end", () => resolve(body));
      stream.on("error", reject);
      stream.end();
    });
    expect(reply).toBe("ok");
    await until(() => client.closed(), (closed) => closed, 10_000, "the idle session to be closed");
    expect(client.goaway()).toBe(true);
  });

  it("answers a request body that never ends with 408 and resets it, but leaves a stdin stream and a reply in progress alone", async () => {
    const url = await start();
    const client = session(url);
    const stdin = unfinished(client.session, "/stdin");
    const streaming = await new Promise<{ closed: () => boolean; body: () => string }>((resolve) => {
      const stream = client.session.request({ ":method": "POST", ":path": "/stream" });
      let closed = false;
      let body = "";
      stream.on("data", (chunk: Buffer) => {
        body += chunk.toString();
        resolve({ closed: () => closed, body: () => body });
      });
      stream.on("error", () => undefined);
      stream.on("close", () => (closed = true));
      stream.end("all of it");
    });
    const stalled = unfinished(client.session, "/");
    await until(() => stalled.closed(), (closed) => closed, 10_000, "the unfinished request to be reset");
    expect(stalled.status()).toBe(408);
    // The stalled stream's deadline came after both others started: theirs passed too.
    expect(stdin.closed()).toBe(false);
    expect(streaming.closed()).toBe(false);
    expect(streaming.body()).toBe("first\n");
    expect(client.closed()).toBe(false);
  });

  it("keeps a connection cap: connections past it are closed as they arrive, and the node serves again once the stalled ones time out", async () => {
    // A handshake bound long enough that no accepted connection leaves during the burst.
    const url = await start({ maxConnections: 20, headersTimeoutMs: 3000 });
    const probes = Array.from({ length: 40 }, () => rawConnection(url));
    const answered = new Set<Socket>();
    for (const probe of probes) {
      probe.socket.on("data", () => answered.add(probe.socket));
      // A whole preface and no SETTINGS: an accepted connection gets the server's SETTINGS.
      probe.socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    }
    // Those past the cap are closed unanswered, the others by the handshake bound.
    await until(() => probes.filter((p) => p.closed()).length, (closed) => closed === 40, 10_000, "every stalled connection to be closed");
    expect(answered.size).toBe(20);
    const reply = await fetch(`${url}/`);
    expect(await reply.text()).toBe("ok");
  });
});
