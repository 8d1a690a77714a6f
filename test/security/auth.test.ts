import { connect as netConnect } from "node:net";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskSpecSchema } from "../../gen/drce/v1/task_pb.js";
import { SendTaskInputRequestSchema, TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { createTokenCheck } from "../../src/auth.js";
import { startNode, type TestNode } from "../helpers/node.js";
import { clientFor } from "./clients.js";

const token = "9f2c-node-token";
let node: TestNode;
const closers: (() => void)[] = [];

beforeAll(async () => {
  node = await startNode({ token });
});
afterAll(async () => {
  for (const close of closers) close();
  await node.stop();
});

function taskService(options: { token?: string; protocol?: "connect" | "grpc" } = {}) {
  const handle = clientFor(TaskService, node.url, options);
  closers.push(handle.close);
  return handle.client;
}

/** Calls every TaskService method once and returns the Connect code each ended with. */
async function codesOfEveryMethod(client: ReturnType<typeof taskService>): Promise<Record<string, Code | "ok">> {
  const outcome = async (call: () => Promise<unknown>): Promise<Code | "ok"> => {
    try {
      await call();
      return "ok";
    } catch (error) {
      return ConnectError.from(error).code;
    }
  };
  const drain = async (stream: AsyncIterable<unknown>): Promise<void> => {
    for await (const _ of stream) break;
  };
  async function* oneInput() {
    yield create(SendTaskInputRequestSchema, { task: "nope", data: new Uint8Array([1]) });
  }
  return {
    SubmitTask: await outcome(() => client.submitTask({ task: create(TaskSpecSchema, { command: "true" }) })),
    GetTask: await outcome(() => client.getTask({ task: "nope" })),
    TerminateTask: await outcome(() => client.terminateTask({ task: "nope" })),
    FetchTask: await outcome(() => client.fetchTask({ task: "nope" })),
    DeleteTask: await outcome(() => client.deleteTask({ task: "nope" })),
    ListTasks: await outcome(() => client.listTasks({})),
    RunTask: await outcome(() => drain(client.runTask({ task: create(TaskSpecSchema, { command: "true" }) }))),
    SendTaskInput: await outcome(() => client.sendTaskInput(oneInput())),
    StreamTaskOutput: await outcome(() => drain(client.streamTaskOutput({ task: "nope" }))),
    // From the start: the tasks above made events, so the watch has one to deliver and ends, whenever it begins.
    WatchTaskEvents: await outcome(() => drain(client.watchTaskEvents({ fromStart: true }))),
  };
}

/**
 * Sends one raw HTTP/1.1 request with exactly the given Authorization bytes (or none) and
 * returns the status code and body: node's own clients refuse to send some of these headers.
 */
function rawRequest(path: string, authorization: Buffer | undefined, body: string, contentType = "application/json"): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(node.url);
  return new Promise((resolve, reject) => {
    const socket = netConnect(Number(port), hostname);
    const head = `POST ${path} HTTP/1.1\r\nhost: ${hostname}\r\ncontent-type: ${contentType}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n`;
    const parts: Buffer[] = [Buffer.from(head, "latin1")];
    if (authorization !== undefined) parts.push(Buffer.from("authorization: ", "latin1"), authorization, Buffer.from("\r\n", "latin1"));
    parts.push(Buffer.from(`\r\n${body}`, "utf8"));
    socket.end(Buffer.concat(parts));
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, body: text.slice(text.indexOf("\r\n\r\n") + 4) });
    });
  });
}

const legacyCheck = JSON.stringify({ type: 1, id: 1, data: Buffer.from('{"type":1}').toString("base64") });

/** Authorization headers that must all be refused, as raw bytes. */
const badHeaders: [string, Buffer | undefined][] = [
  ["absent", undefined],
  ["empty", Buffer.from("")],
  ["scheme only", Buffer.from("Bearer")],
  ["scheme and a space", Buffer.from("Bearer ")],
  ["another scheme", Buffer.from(`Basic ${Buffer.from(`drce:${token}`).toString("base64")}`)],
  ["the token without a scheme", Buffer.from(token)],
  ["one character longer", Buffer.from(`Bearer ${token}x`)],
  ["one character shorter", Buffer.from(`Bearer ${token.slice(0, -1)}`)],
  ["same length, last character wrong", Buffer.from(`Bearer ${token.slice(0, -1)}X`)],
  ["non-ASCII in UTF-8 (Bearer ñ)", Buffer.from("Bearer ñ", "utf8")],
  ["raw high bytes", Buffer.concat([Buffer.from("Bearer "), Buffer.from([0xff, 0xfe, 0x80, 0xc3])])],
  ["the token with a non-ASCII suffix", Buffer.concat([Buffer.from(`Bearer ${token}`), Buffer.from([0xe9])])],
  ["two tokens", Buffer.from(`Bearer ${token} ${token}`)],
  ["a very long token", Buffer.from(`Bearer ${"a".repeat(6000)}`)],
];

describe("a node with a token", () => {
  it("refuses every TaskService RPC without a token, over Connect and gRPC", async () => {
    for (const protocol of ["connect", "grpc"] as const) {
      const codes = await codesOfEveryMethod(taskService({ protocol }));
      expect(Object.keys(codes)).toEqual(TaskService.methods.map((m) => m.name));
      for (const [method, code] of Object.entries(codes)) expect(code, `${protocol} ${method}`).toBe(Code.Unauthenticated);
    }
  });

  it("refuses every TaskService RPC with a wrong token", async () => {
    const codes = await codesOfEveryMethod(taskService({ token: `${token}-wrong` }));
    for (const [method, code] of Object.entries(codes)) expect(code, method).toBe(Code.Unauthenticated);
  });

  it("lets every TaskService RPC through with the right token (each then fails or succeeds on its own merits)", async () => {
    const codes = await codesOfEveryMethod(taskService({ token }));
    for (const [method, code] of Object.entries(codes)) expect(code, method).not.toBe(Code.Unauthenticated);
    expect(codes).toMatchObject({ SubmitTask: "ok", ListTasks: "ok", GetTask: Code.NotFound });
  });

  it("refuses the legacy POST /drce without the right token with 401 and a JSON error item", async () => {
    const reply = await rawRequest("/drce", undefined, legacyCheck);
    expect(reply.status).toBe(401);
    expect(JSON.parse(reply.body)).toMatchObject([{ error_message: "missing or wrong bearer token" }]);
    const accepted = await rawRequest("/drce", Buffer.from(`Bearer ${token}`), legacyCheck);
    expect(accepted.status).toBe(200);
  });

  for (const [name, header] of badHeaders) {
    it(`answers an Authorization header that is ${name} with 401 on Connect and on /drce, never a 500`, async () => {
      const connect = await rawRequest("/drce.v1.TaskService/ListTasks", header, "{}");
      expect(connect.status).toBe(401);
      expect(JSON.parse(connect.body)).toMatchObject({ code: "unauthenticated" });
      const legacy = await rawRequest("/drce", header, legacyCheck);
      expect(legacy.status).toBe(401);
    });
  }

  it("accepts the scheme in any case, as RFC 9110 says, over raw HTTP/1.1", async () => {
    expect((await rawRequest("/drce.v1.TaskService/ListTasks", Buffer.from(`bearer ${token}`), "{}")).status).toBe(200);
    expect((await rawRequest("/drce.v1.TaskService/ListTasks", Buffer.from(`BEARER ${token}`), "{}")).status).toBe(200);
  });

  it("answers a header with control characters with 400 from the HTTP parser, not a 500", async () => {
    const reply = await rawRequest("/drce", Buffer.from(`Bearer ${token}\x01`), legacyCheck);
    expect([400, 401]).toContain(reply.status);
  });
});

describe("createTokenCheck", () => {
  const check = createTokenCheck("s3cret");

  it("accepts exactly the token", () => {
    expect(check("Bearer s3cret")).toBe(true);
    expect(check("  Bearer s3cret  ")).toBe(true);
  });

  it("refuses everything else without throwing", () => {
    for (const value of [undefined, null, "", "Bearer", "Bearer ", "Bearer s3cre", "Bearer s3cretx", "Bearer S3CRET", "Bearer ñ", "Bearer \u0000", "Bearer 🔑", "s3cret", "Basic s3cret"]) {
      expect(check(value), JSON.stringify(value)).toBe(false);
    }
  });

  it("lets everything through when no token is configured", () => {
    expect(createTokenCheck("")(undefined)).toBe(true);
  });
});
