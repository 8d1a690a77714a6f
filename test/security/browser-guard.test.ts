import http from "node:http";
import http2 from "node:http2";
import { connect as netConnect } from "node:net";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskSpecSchema } from "../../gen/drce/v1/task_pb.js";
import { SubmitTaskRequestSchema } from "../../gen/drce/v1/task_service_pb.js";
import { corsAllowedHeaders, corsExposedHeaders, hostNameOf, parseAllowHost, parseCorsOrigin } from "../../src/browser-guard.js";
import { ConfigError, parseServeConfig } from "../../src/config.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * The Host and Origin checks, header by header, on every endpoint of a real node: Connect,
 * gRPC, gRPC-Web, POST /drce, /drce/admin, /metrics, reflection and health. A refused
 * request runs nothing: the node's task list stays empty and the command's marker file is
 * never made. The browser itself is in browser.test.ts.
 */

const token = "guard-token-5d1";
const listedOrigin = "http://app.example:8080";
let node: TestNode;
let port: number;
let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "drce-guard-"));
  node = await startNode({ token, allowHosts: ["drce.internal"], corsOrigins: [listedOrigin] });
  port = Number(new URL(node.url).port);
});
afterAll(async () => {
  await node.stop();
  await rm(scratch, { recursive: true, force: true });
});

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One HTTP/1.1 request with exactly these headers (Host included). */
function h1(method: string, path: string, headers: Record<string, string>, body = ""): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path, headers: { ...headers, "content-length": String(Buffer.byteLength(body)) }, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** One HTTP/2 request (gRPC's transport) with this `:authority` and headers. */
function h2(authority: string, path: string, headers: Record<string, string>, body: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, ":authority": authority, te: "trailers", ...headers });
    let status = 0;
    let replyHeaders: Record<string, string | string[] | undefined> = {};
    let text = "";
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      replyHeaders = { ...h };
    });
    stream.on("trailers", (t) => (replyHeaders = { ...replyHeaders, ...t }));
    stream.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
    stream.on("error", reject);
    stream.on("close", () => {
      session.close();
      resolve({ status, headers: replyHeaders, body: text });
    });
    stream.end(body);
  });
}

/** A gRPC or gRPC-Web message frame around protobuf bytes. */
const frame = (message: Buffer = Buffer.alloc(0)): Buffer => {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
};
const submitMessage = (command: string): Buffer => Buffer.from(toBinary(SubmitTaskRequestSchema, create(SubmitTaskRequestSchema, { task: create(TaskSpecSchema, { command }) })));

const legacyBody = (command: string): string => JSON.stringify({ type: 0, id: 7001, data: Buffer.from(JSON.stringify({ session: { tmode: 1 }, command })).toString("base64") });

interface Endpoint {
  readonly name: string;
  /** Sends the endpoint's request naming this host and carrying these extra headers. */
  send(host: string, extra: Record<string, string>): Promise<Reply>;
}

const auth = { authorization: `Bearer ${token}` };
const markerOf = (name: string): string => join(scratch, `ran-${name.replace(/\W+/g, "-")}`);

/** Every endpoint of the node, each sending a request that would run or read something. */
const endpoints: Endpoint[] = [
  { name: "Connect SubmitTask", send: (host, extra) => h1("POST", "/drce.v1.TaskService/SubmitTask", { host, "content-type": "application/json", ...auth, ...extra }, JSON.stringify({ task: { command: `touch ${markerOf("connect")}` } })) },
  { name: "gRPC SubmitTask", send: (host, extra) => h2(host, "/drce.v1.TaskService/SubmitTask", { "content-type": "application/grpc", ...auth, ...extra }, frame(submitMessage(`touch ${markerOf("grpc")}`))) },
  { name: "gRPC-Web SubmitTask", send: (host, extra) => h1("POST", "/drce.v1.TaskService/SubmitTask", { host, "content-type": "application/grpc-web+proto", "x-grpc-web": "1", ...auth, ...extra }, frame(submitMessage(`touch ${markerOf("grpc-web")}`)).toString("latin1")) },
  { name: "POST /drce", send: (host, extra) => h1("POST", "/drce", { host, "content-type": "text/plain", ...auth, ...extra }, legacyBody(`touch ${markerOf("legacy")}`)) },
  { name: "GET /drce/admin", send: (host, extra) => h1("GET", "/drce/admin/NODE_INFO", { host, ...auth, ...extra }) },
  { name: "GET /metrics", send: (host, extra) => h1("GET", "/metrics", { host, ...auth, ...extra }) },
  { name: "reflection", send: (host, extra) => h2(host, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", { "content-type": "application/grpc", ...auth, ...extra }, frame(Buffer.from([0x3a, 0x00]))) },
  { name: "health", send: (host, extra) => h2(host, "/grpc.health.v1.Health/Check", { "content-type": "application/grpc", ...extra }, frame()) },
];

/** The marker files of the endpoints that run a command. */
const commandMarkers = ["connect", "grpc", "grpc-web", "legacy"];

async function taskCount(): Promise<number> {
  return (await node.client.listTasks({}, { headers: auth })).tasks.length;
}

describe("the Host check", () => {
  it("refuses a rebound host name with 421 on every endpoint, before the token and before any work", async () => {
    for (const endpoint of endpoints) {
      const reply = await endpoint.send(`rebind.attacker.test:${port}`, {});
      expect(reply.status, endpoint.name).toBe(421);
      expect(reply.body, endpoint.name).toMatch(/does not answer to the host name \\?"rebind\.attacker\.test\\?".*--allow-host/);
    }
    expect(await taskCount()).toBe(0);
    for (const name of commandMarkers) expect(existsSync(markerOf(name)), name).toBe(false);
  });

  it("answers each endpoint in its own form: legacy error 104, Connect permission_denied, gRPC status 7", async () => {
    const host = `evil.example:${port}`;
    const [connect, grpc, grpcWeb, legacy, admin] = await Promise.all(endpoints.slice(0, 5).map((e) => e.send(host, {})));
    expect(JSON.parse(connect!.body)).toMatchObject({ code: "permission_denied" });
    expect(connect!.headers["drce-error-code"]).toBe("104");
    expect(grpc!.headers["grpc-status"]).toBe("7");
    expect(decodeURIComponent(String(grpcWeb!.headers["grpc-message"]))).toMatch(/evil\.example/);
    expect(JSON.parse(legacy!.body)).toMatchObject([{ error_code: 104, state: 6 }]);
    expect(JSON.parse(admin!.body)).toMatchObject({ status: "ERROR", error: { code: "forbidden" } });
  });

  it("lets loopback names, the listen address and --allow-host names through, on every endpoint", async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST.:${port}`, `[::1]:${port}`, "localhost", `drce.internal:${port}`]) {
      for (const endpoint of endpoints) {
        const reply = await endpoint.send(host, {});
        expect([403, 421], `${endpoint.name} as ${host}`).not.toContain(reply.status);
      }
    }
    // The positive control: the same requests ran their commands.
    for (const name of commandMarkers) expect(existsSync(markerOf(name)), name).toBe(true);
  });

  it("refuses a request that names no host at all (HTTP/1.0 without Host)", async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = netConnect(port, "127.0.0.1");
      let text = "";
      socket.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
      socket.on("error", reject);
      socket.on("close", () => resolve(text));
      socket.end(`GET /metrics HTTP/1.0\r\nauthorization: Bearer ${token}\r\n\r\n`);
    });
    expect(reply).toMatch(/^HTTP\/1\.1 421 /);
    expect(reply).toMatch(/names no host/);
  });

  it("reads host names as browsers and clients write them", () => {
    expect(hostNameOf("Example.COM.:80")).toBe("example.com");
    expect(hostNameOf("[::1]:8470")).toBe("::1");
    expect(hostNameOf("a@b")).toBeUndefined();
    expect(hostNameOf("::1")).toBeUndefined();
  });
});

describe("the Origin check", () => {
  it("refuses a foreign origin with 403 on every endpoint, and nothing runs", async () => {
    const before = await taskCount();
    for (const origin of ["http://attacker.example", "null", `http://127.0.0.1:${port + 1}`]) {
      for (const endpoint of endpoints) {
        const reply = await endpoint.send(`127.0.0.1:${port}`, { origin });
        expect(reply.status, `${endpoint.name} from ${origin}`).toBe(403);
        expect(reply.body, endpoint.name).toContain(`--cors-origin ${origin}`);
        expect(reply.headers["access-control-allow-origin"], endpoint.name).toBeUndefined();
      }
    }
    expect(await taskCount()).toBe(before);
  });

  it("refuses a browser's cross-site request that carries no Origin (an image or script tag), but not a navigation", async () => {
    const image = await h1("GET", "/metrics", { host: `127.0.0.1:${port}`, ...auth, "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors" });
    expect(image.status).toBe(403);
    const typed = await h1("GET", "/metrics", { host: `127.0.0.1:${port}`, ...auth, "sec-fetch-site": "none", "sec-fetch-mode": "navigate" });
    expect(typed.status).toBe(200);
  });

  it("lets the node's own origin through", async () => {
    const reply = await h1("GET", "/metrics", { host: `127.0.0.1:${port}`, ...auth, origin: `http://127.0.0.1:${port}` });
    expect(reply.status).toBe(200);
  });

  it("answers a preflight of a listed origin with the methods and headers Connect and gRPC-Web need, and refuses others", async () => {
    const preflight = (origin: string): Promise<Reply> =>
      h1("OPTIONS", "/drce.v1.TaskService/SubmitTask", { host: `127.0.0.1:${port}`, origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type,connect-protocol-version,authorization" });
    const allowed = await preflight(listedOrigin);
    expect(allowed.status).toBe(204);
    expect(allowed.headers["access-control-allow-origin"]).toBe(listedOrigin);
    expect(String(allowed.headers["access-control-allow-methods"]).split(", ")).toEqual(expect.arrayContaining(["POST", "GET"]));
    const headers = String(allowed.headers["access-control-allow-headers"]).split(", ");
    for (const name of ["content-type", "connect-protocol-version", "connect-timeout-ms", "grpc-timeout", "x-grpc-web", "x-user-agent", "authorization"]) expect(headers, name).toContain(name);
    const refused = await preflight("http://attacker.example");
    expect(refused.status).toBe(403);
    expect(refused.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("serves a listed origin with CORS headers that expose the gRPC status and the legacy error code", async () => {
    const reply = await h1("POST", "/drce.v1.TaskService/GetTask", { host: `127.0.0.1:${port}`, origin: listedOrigin, "content-type": "application/json", ...auth }, JSON.stringify({ task: "nope" }));
    expect(reply.status).toBe(404);
    expect(reply.headers["access-control-allow-origin"]).toBe(listedOrigin);
    const exposed = String(reply.headers["access-control-expose-headers"]).split(", ");
    for (const name of ["grpc-status", "grpc-message", "drce-error-code"]) expect(exposed, name).toContain(name);
    expect(corsExposedHeaders).toEqual(expect.arrayContaining(exposed));
    expect(corsAllowedHeaders).toContain("authorization");
  });
});

describe("--allow-host and --cors-origin", () => {
  it("are repeatable and normalized", () => {
    const config = parseServeConfig(["--allow-host", "Drce.Internal.", "--allow-host", "10.1.2.3", "--cors-origin", "HTTPS://App.Example:443", "--cors-origin", "http://localhost:5173/"], {});
    expect(config).toMatchObject({ allowHosts: ["drce.internal", "10.1.2.3"], corsOrigins: ["https://app.example", "http://localhost:5173"] });
  });

  it("refuse wildcards, paths and ports where they do not belong, saying what is expected", () => {
    for (const origin of ["*", "null", "https://app.example/path", "app.example", "ftp://app.example"]) {
      expect(() => parseServeConfig(["--cors-origin", origin], {}), origin).toThrow(ConfigError);
      expect(() => parseCorsOrigin(origin), origin).toThrow(/--cors-origin must be an origin such as/);
    }
    for (const name of ["drce.internal:8470", "a b", "*.example", "http://x"]) {
      expect(() => parseServeConfig(["--allow-host", name], {}), name).toThrow(ConfigError);
      expect(() => parseAllowHost(name), name).toThrow(/--allow-host must be a host name or an address without a port/);
    }
  });
});
