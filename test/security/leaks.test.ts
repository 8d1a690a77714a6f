import { rm, writeFile } from "node:fs/promises";
import http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { TaskMode, TaskSpecSchema } from "../../gen/drce/v1/task_pb.js";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { zmqPlainUsername } from "../../src/gateway/zmq-auth.js";
import { legacyRequest } from "../gateway/legacy-request-encoder.js";
import { startNode, until, type TestNode } from "../helpers/node.js";
import { clientFor } from "./clients.js";

/*
 * Every transport is fed malformed input and made to hit internal failures (a broken store,
 * a spool file gone from disk, a stack overflow in decoding); no reply may carry a stack
 * frame or a path of the node's own files (its data directory, its source tree).
 */

const token = "leak-token";
let node: TestNode;
const closers: (() => void)[] = [];

beforeAll(async () => {
  node = await startNode({ token, zmqListen: "127.0.0.1:0" });
});
afterAll(async () => {
  for (const close of closers) close();
  await node.stop();
});

/** Fails when text names the node's files or carries a stack trace. */
function expectNoLeak(text: string, dataDir: string, what: string): void {
  expect(text, what).not.toContain(dataDir);
  expect(text, what).not.toContain(process.cwd());
  expect(text, what).not.toContain("/work/");
  expect(text, what).not.toContain("node:internal");
  expect(text, what).not.toMatch(/\bat .*:\d+:\d+/);
  expect(text, what).not.toMatch(/\n\s+at /);
  expect(text, what).not.toMatch(/\.(ts|js):\d+/);
}

async function post(url: string, path: string, body: string | Buffer, contentType: string): Promise<{ status: number; text: string }> {
  const reply = await fetch(`${url}${path}`, { method: "POST", body, headers: { authorization: `Bearer ${token}`, "content-type": contentType } });
  return { status: reply.status, text: await reply.text() };
}

/** A raw gRPC call over HTTP/2 with the given message bytes; returns status, message and body. */
function rawGrpc(url: string, path: string, frame: Buffer): Promise<{ headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${token}` });
    let headers = "";
    let body = "";
    stream.on("response", (h) => (headers += JSON.stringify(h)));
    stream.on("trailers", (t) => (headers += JSON.stringify(t)));
    stream.on("data", (chunk: Buffer) => (body += chunk.toString("latin1")));
    stream.on("end", () => {
      session.close();
      resolve({ headers, body });
    });
    stream.on("error", reject);
    stream.end(frame);
  });
}

function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** A legacy request nested `depth` subtasks deep. */
function deeplyNested(depth: number): string {
  let message = '{"type":0,"id":1,"data":"e30="}';
  for (let i = 0; i < depth; i++) message = `{"type":0,"id":${i + 2},"data":"e30=","subtasks":[${message}]}`;
  return message;
}

const malformedLegacy: [string, string | Buffer][] = [
  ["not JSON", "{not json"],
  ["binary garbage", Buffer.from([0xff, 0x00, 0xfe, 0x7b, 0x22])],
  ["bad base64", JSON.stringify({ type: 0, id: 1, data: "%%%not base64%%%" })],
  ["data that is not an object", JSON.stringify({ type: 0, id: 1, data: Buffer.from("[1,2]").toString("base64") })],
  ["a field of the wrong type", JSON.stringify(legacyRequest(0, 1, { command: 42, session: { tmode: "x" } }))],
  ["an unknown request type", JSON.stringify(legacyRequest(99, 1, {}))],
  ["subtasks nested 20000 deep", deeplyNested(20_000)],
];

async function zmqAsk(endpoint: string, body: string | Buffer): Promise<string> {
  const dealer = new Dealer({ routingId: `leak-${Math.random()}`, linger: 0, receiveTimeout: 20_000 });
  dealer.plainUsername = zmqPlainUsername;
  dealer.plainPassword = token;
  closers.push(() => dealer.close());
  dealer.connect(endpoint);
  await dealer.send(["1", body]);
  const [, reply] = await dealer.receive();
  return reply!.toString();
}

describe("malformed input gets errors without stack traces or node paths", () => {
  for (const [name, body] of malformedLegacy) {
    it(`legacy HTTP and ZeroMQ: ${name}`, async () => {
      const overHttp = await post(node.url, "/drce", body, "application/json");
      expect(overHttp.status).toBeLessThan(500);
      const items = JSON.parse(overHttp.text) as { error_code: number }[];
      expect(items[0]?.error_code).toBeGreaterThan(0);
      expectNoLeak(overHttp.text, node.dataDir, `http ${name}`);
      const overZmq = await zmqAsk(node.zmqEndpoint, body);
      expect((JSON.parse(overZmq) as { error_code: number }[])[0]?.error_code).toBeGreaterThan(0);
      expectNoLeak(overZmq, node.dataDir, `zmq ${name}`);
    });
  }

  it("Connect over HTTP/1.1: bad JSON, a wrong field type, an unknown method, a wrong content type", async () => {
    const cases: [string, string, string][] = [
      ["/drce.v1.TaskService/SubmitTask", "{not json", "application/json"],
      ["/drce.v1.TaskService/SubmitTask", '{"task":{"timeoutSeconds":"many"}}', "application/json"],
      ["/drce.v1.TaskService/SubmitTask", '{"task":{"files":[{"name":"x","data":"!!!"}]}}', "application/json"],
      ["/drce.v1.TaskService/NoSuchMethod", "{}", "application/json"],
      ["/drce.v1.TaskService/SubmitTask", "\u0000\u0001garbage", "application/proto"],
      ["/drce.v1.TaskService/SubmitTask", "{}", "text/plain"],
    ];
    for (const [path, body, type] of cases) {
      const reply = await post(node.url, path, body, type);
      // (connect-es answers an unparsable binary body with Internal, a 500; the message is
      // still only the parser's, checked below.)
      expect(reply.status, `${path} ${type}`).toBeGreaterThanOrEqual(400);
      expectNoLeak(reply.text, node.dataDir, `${path} ${body}`);
    }
  });

  it("gRPC over HTTP/2: a message that is not protobuf, a truncated frame, invalid UTF-8 in a string", async () => {
    const invalidUtf8 = Buffer.from([0x0a, 0x04, 0x12, 0x02, 0xc3, 0x28]); // task { command: <bad UTF-8> }
    for (const frame of [grpcFrame(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])), Buffer.from([0, 0, 0, 0, 9, 1]), grpcFrame(invalidUtf8)]) {
      const reply = await rawGrpc(node.url, "/drce.v1.TaskService/SubmitTask", frame);
      expect(reply.headers).toMatch(/grpc-status/);
      expect(reply.headers).not.toMatch(/"grpc-status":"0"/);
      expectNoLeak(reply.headers + reply.body, node.dataDir, "grpc");
    }
  });

  it("task-level failures name only what the caller sent", async () => {
    const { client, close } = clientFor(TaskService, node.url, { token });
    closers.push(close);
    const { result } = await client.submitTask({ task: create(TaskSpecSchema, { command: "true", files: [{ name: "missing.txt", action: 4 }], workDir: "sub" }) });
    expect(result?.errorCode).toBe(203);
    expectNoLeak(result?.errorMessage ?? "", node.dataDir, "file read error");
    const shell = await client.submitTask({ task: create(TaskSpecSchema, { command: "true", shell: "/nonexistent/sh" }) });
    expect(shell.result?.errorCode).toBe(15);
    expectNoLeak(shell.result?.errorMessage ?? "", node.dataDir, "shell error");
  });
});

describe("internal failures get generic errors on every transport", () => {
  it("a task whose output spool vanished from disk: fetch over Connect and legacy", async () => {
    const { client, close } = clientFor(TaskService, node.url, { token });
    closers.push(close);
    await client.submitTask({ task: create(TaskSpecSchema, { id: "spool-gone", command: "echo data", mode: TaskMode.ASYNC }) });
    await until(() => client.getTask({ task: "spool-gone" }), (r) => r.result?.finishedAtMs !== 0n, 20_000, "the task to finish");
    await rm(`${node.dataDir}/tasks/spool-gone`, { recursive: true, force: true });
    const fetched = await client.fetchTask({ task: "spool-gone" }).then((r) => JSON.stringify(r.result?.errorMessage ?? ""), (e: unknown) => ConnectError.from(e).message);
    expectNoLeak(fetched, node.dataDir, "connect fetch");
    const legacy = await post(node.url, "/drce", JSON.stringify(legacyRequest(3, "spool-gone", { type: 0 })), "application/json");
    expectNoLeak(legacy.text, node.dataDir, "legacy fetch");
  });

  it("a broken store: submissions over Connect, gRPC, legacy HTTP and ZeroMQ get Unavailable / error 100", async () => {
    const broken = await startNode({ token, zmqListen: "127.0.0.1:0" });
    try {
      await rm(`${broken.dataDir}/tasks`, { recursive: true, force: true });
      await writeFile(`${broken.dataDir}/tasks`, "not a directory");
      for (const protocol of ["connect", "grpc"] as const) {
        const { client, close } = clientFor(TaskService, broken.url, { token, protocol });
        closers.push(close);
        const error = await client.submitTask({ task: create(TaskSpecSchema, { command: "true" }) }).then(() => undefined, (e: unknown) => ConnectError.from(e));
        expect(error?.message).toMatch(/storage error/);
        expectNoLeak(error?.message ?? "", broken.dataDir, protocol);
        expectNoLeak(JSON.stringify([...(error?.metadata ?? new Headers())]), broken.dataDir, `${protocol} metadata`);
      }
      const body = JSON.stringify(legacyRequest(0, 77, { session: { tmode: 1 }, command: "true" }));
      const overHttp = await post(broken.url, "/drce", body, "application/json");
      expect(JSON.parse(overHttp.text)).toMatchObject([{ error_code: 100, state: 6 }]);
      expectNoLeak(overHttp.text, broken.dataDir, "legacy http");
      const overZmq = await zmqAsk(broken.zmqEndpoint, body);
      expect(JSON.parse(overZmq)).toMatchObject([{ error_code: 100, state: 6 }]);
      expectNoLeak(overZmq, broken.dataDir, "zmq");
    } finally {
      await broken.stop();
    }
  });
});
