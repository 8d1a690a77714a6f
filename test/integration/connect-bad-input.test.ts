import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createClient } from "@connectrpc/connect";
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionType, TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { GetTaskRequestSchema, SubmitTaskRequestSchema, TaskService, TerminateAlgorithm } from "../../gen/drce/v1/task_service_pb.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * Requests that are not what the contract says, over every wire the node serves: bytes that
 * do not decode as the method's message, and enum numbers the contract does not declare.
 * Each is InvalidArgument with legacy error 103 in `drce-error-code`, and runs nothing.
 */

let node: TestNode;

beforeAll(async () => {
  node = await startNode();
});
afterAll(async () => {
  await node?.stop();
});

const path = (method: keyof typeof TaskService.method): string => `/${TaskService.typeName}/${TaskService.method[method].name}`;

/** Byte strings that are no valid message of any request type, each for its own reason. */
const malformed: Record<string, Buffer> = {
  "a truncated varint": Buffer.from([0x08, 0xff]),
  "a length past the end": Buffer.from([0x0a, 0x7f, 0x61]),
  "wire type 7": Buffer.from([0x0f, 0x00]),
  "field number 0": Buffer.from([0x02, 0x00]),
  "an end group without a start": Buffer.from([0x0c]),
  "invalid UTF-8 in a string field": Buffer.from([0x0a, 0x02, 0xc3, 0x28]),
  "a message field holding a varint": Buffer.from([0x08, 0x01]),
};

/** Frames a message as a gRPC / Connect-streaming envelope. */
function envelope(body: Uint8Array, flags = 0): Buffer {
  const framed = Buffer.alloc(5 + body.length);
  framed[0] = flags;
  framed.writeUInt32BE(body.length, 1);
  Buffer.from(body).copy(framed, 5);
  return framed;
}

/** POSTs raw bytes over HTTP/2 and collects status, headers, trailers and body. */
async function post2(requestPath: string, contentType: string, body: Buffer): Promise<{ status: number; headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; body: Buffer }> {
  const session = http2.connect(node.url);
  session.on("error", () => undefined);
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": requestPath, "content-type": contentType, te: "trailers", "connect-protocol-version": "1" });
      let headers: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on("response", (h) => (headers = h));
      stream.on("trailers", (t) => (trailers = t));
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => resolve({ status: Number(headers[":status"]), headers, trailers, body: Buffer.concat(chunks) }));
      stream.on("error", reject);
      stream.end(body);
    });
  } finally {
    session.close();
  }
}

/** gRPC status and legacy code of a reply, from trailers (or headers, in a trailers-only reply). */
function grpcStatus(reply: { headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders }): { status: number; code: string } {
  const from = reply.trailers["grpc-status"] !== undefined ? reply.trailers : reply.headers;
  return { status: Number(from["grpc-status"]), code: String(from["drce-error-code"]) };
}

async function errorOf(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the call succeeded but was expected to fail");
}

describe.concurrent("a malformed binary request", () => {
  for (const [what, bytes] of Object.entries(malformed)) {
    it(`with ${what} is InvalidArgument over Connect unary (HTTP 400), not Internal`, async () => {
      // Their field 1 is a string or a message, so none of these bytes decodes.
      for (const method of ["submitTask", "getTask", "terminateTask", "fetchTask", "deleteTask"] as const) {
        const reply = await fetch(`${node.url}${path(method)}`, { method: "POST", headers: { "content-type": "application/proto", "connect-protocol-version": "1" }, body: bytes });
        expect(reply.status, method).toBe(400);
        expect(reply.headers.get("drce-error-code"), method).toBe("103");
        const json = (await reply.json()) as { code: string; message: string };
        expect(json.code, method).toBe("invalid_argument");
        expect(json.message).toMatch(/^malformed request: not a valid drce\.v1\.\w+Request message/);
      }
    });

    it(`with ${what} is INVALID_ARGUMENT over gRPC and gRPC-Web, and over Connect streaming`, async () => {
      const grpc = await post2(path("submitTask"), "application/grpc", envelope(bytes));
      expect(grpcStatus(grpc)).toEqual({ status: Code.InvalidArgument, code: "103" });
      const grpcWeb = await post2(path("getTask"), "application/grpc-web+proto", envelope(bytes));
      const trailerText = grpcWeb.body.toString("latin1");
      expect(trailerText).toMatch(/grpc-status: ?3\r\n/);
      expect(trailerText).toMatch(/drce-error-code: ?103\r\n/);
      const stream = await post2(path("streamTaskOutput"), "application/connect+proto", envelope(bytes));
      expect(stream.status).toBe(200);
      // The end-stream message (flag 2) carries the error as JSON.
      const endStream = JSON.parse(stream.body.subarray(5).toString()) as { error: { code: string }; metadata: Record<string, string[]> };
      expect(endStream.error.code).toBe("invalid_argument");
      expect(endStream.metadata["drce-error-code"]).toEqual(["103"]);
    });
  }

  it("never answers Internal to 300 mutations of valid requests (seeded), and runs nothing", async () => {
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    // GetTask and TerminateTask of an id no task has: a mutation that still decodes has no effect.
    const bases = [
      { method: path("getTask"), bytes: toBinary(GetTaskRequestSchema, create(GetTaskRequestSchema, { task: "no-such-task", extended: true })) },
      { method: path("terminateTask"), bytes: Buffer.from([0x0a, 0x0c, ...Buffer.from("no-such-task"), 0x10, 0x02, 0x28, 0x09]) },
    ];
    const answers = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const base = bases[i % bases.length]!;
      const bytes = Buffer.from(base.bytes);
      for (let flips = 1 + random(3); flips > 0; flips--) bytes[random(bytes.length)] = random(256);
      const cut = random(4) === 0 ? bytes.subarray(0, random(bytes.length)) : bytes;
      const reply = await fetch(`${node.url}${base.method}`, { method: "POST", headers: { "content-type": "application/proto", "connect-protocol-version": "1" }, body: cut });
      const json = (await reply.json()) as { code?: string };
      const key = `${reply.status} ${json.code ?? "ok"}`;
      answers.set(key, (answers.get(key) ?? 0) + 1);
    }
    // Mutations that still decode name no task (NotFound) or break a rule (InvalidArgument).
    for (const key of answers.keys()) expect(["400 invalid_argument", "404 not_found"]).toContain(key);
    expect(answers.get("400 invalid_argument") ?? 0).toBeGreaterThan(100);
    // Other tests of this file run meanwhile; no other task may exist.
    const others = (await node.client.listTasks({})).tasks.filter((task) => !/^(well-formed|enum-|93\d\d$)/.test(task.id));
    expect(others).toEqual([]);
    console.info(`300 mutated requests: ${[...answers].map(([key, count]) => `${count} × ${key}`).join(", ")}`);
  });

  it("still lets a well-formed binary request through", async () => {
    const body = toBinary(SubmitTaskRequestSchema, create(SubmitTaskRequestSchema, { task: { id: "well-formed", command: "echo fine" } }));
    const reply = await fetch(`${node.url}${path("submitTask")}`, { method: "POST", headers: { "content-type": "application/proto", "connect-protocol-version": "1" }, body });
    expect(reply.status).toBe(200);
    expect((await node.client.fetchTask({ task: "well-formed", delete: true })).result?.stdout).toEqual(new TextEncoder().encode("fine\n"));
  });
});

type SpecInit = MessageInitShape<typeof TaskSpecSchema>;

describe.concurrent("an enum number the contract does not declare", () => {
  const refused: [string, SpecInit, RegExp][] = [
    ["mode 99", { id: "enum-mode", command: "touch ran", mode: 99 as TaskMode }, /^task\.mode: 99 is not a TaskMode value/],
    ["session.type 77", { id: "enum-session", command: "touch ran", session: { type: 77 as SessionType, host: "127.0.0.1" } }, /^task\.session\.type: 77 is not a SessionType value/],
    ["a subtask's mode -1", { id: "enum-sub", command: "true", subtasks: [{ id: "enum-sub-1", command: "true", mode: -1 as TaskMode }] }, /^task\.subtasks\[0\]\.mode: -1 is not a TaskMode value/],
  ];
  for (const [what, spec, message] of refused) {
    it(`refuses ${what} in SubmitTask with InvalidArgument (legacy 103) over Connect and gRPC, storing nothing`, async () => {
      const grpc = createClient(TaskService, createGrpcTransport({ baseUrl: node.url }));
      for (const client of [node.client, grpc]) {
        const error = await errorOf(client.submitTask({ task: create(TaskSpecSchema, spec) }));
        expect(error.code).toBe(Code.InvalidArgument);
        expect(error.rawMessage).toMatch(message);
        expect(error.metadata.get("drce-error-code")).toBe("103");
        expect((await errorOf(client.getTask({ task: spec.id! }))).code).toBe(Code.NotFound);
      }
      expect((await errorOf(node.client.runTask({ task: create(TaskSpecSchema, { ...spec, id: `${spec.id}-run` }) })[Symbol.asyncIterator]().next())).code).toBe(Code.InvalidArgument);
    });
  }

  it("refuses mode 99 sent as a JSON number", async () => {
    const reply = await fetch(`${node.url}${path("submitTask")}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ task: { id: "enum-json", command: "true", mode: 99 } }) });
    expect(reply.status).toBe(400);
    expect(reply.headers.get("drce-error-code")).toBe("103");
    expect(((await reply.json()) as { code: string }).code).toBe("invalid_argument");
  });

  it("refuses an unknown state in a ListTasks filter", async () => {
    const error = await errorOf(node.client.listTasks({ states: [TaskState.FINISHED, 99 as TaskState] }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toMatch(/^states\[1\]: 99 is not a TaskState value/);
  });

  it("refuses a terminate with an unknown alg or a signal out of range (99999, -9, 65), and the task runs on until a valid one", async () => {
    const id = "enum-terminate";
    await node.client.submitTask({ task: create(TaskSpecSchema, { id, command: "sleep 300", mode: TaskMode.ASYNC }) });
    await until(async () => (await node.client.getTask({ task: id })).result!.state, (state) => state === TaskState.IN_PROGRESS, 15_000, "the task to run");
    const bad = [
      { alg: 7 as TerminateAlgorithm, signal: 0, message: /^alg: 7 is not a TerminateAlgorithm value/ },
      { alg: TerminateAlgorithm.SIGNAL, signal: 99999, message: /^signal: 99999 is not a signal number/ },
      { alg: TerminateAlgorithm.SIGNAL, signal: -9, message: /^signal: -9 is not a signal number/ },
      { alg: TerminateAlgorithm.SIGNAL, signal: 65, message: /^signal: 65 is not a signal number/ },
    ];
    for (const { alg, signal, message } of bad) {
      const error = await errorOf(node.client.terminateTask({ task: id, alg, signal, delayMs: 100, repeat: 1 }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(message);
      expect(error.metadata.get("drce-error-code")).toBe("103");
    }
    expect((await node.client.getTask({ task: id })).result!.state).toBe(TaskState.IN_PROGRESS);
    await node.client.terminateTask({ task: id, alg: TerminateAlgorithm.SIGNAL, signal: 15, delayMs: 100, repeat: 1 });
    const ended = await until(async () => (await node.client.getTask({ task: id })).result!, (r) => r.state === TaskState.TERMINATED, 15_000, "the task to end");
    expect(ended.exitStatus).toBe(143);
  });

  it("is refused on the legacy side too: tmode 99, session.type 77, signal 99999, -9 and 65 get state 6, error 103", async () => {
    const legacy = async (type: number, id: number, data: object): Promise<{ state: number; error_code: number; error_message: string }> => {
      const reply = await fetch(`${node.url}/drce`, { method: "POST", body: JSON.stringify({ type, id, data: Buffer.from(JSON.stringify(data)).toString("base64") }) });
      return ((await reply.json()) as { state: number; error_code: number; error_message: string }[])[0]!;
    };
    expect(await legacy(0, 9301, { session: { tmode: 99 }, command: "true" })).toMatchObject({ state: 6, error_code: 103 });
    expect(await legacy(0, 9302, { session: { tmode: 1, type: 77 }, command: "true" })).toMatchObject({ state: 6, error_code: 103 });
    expect(await legacy(0, 9303, { session: { tmode: 2 }, command: "sleep 300" })).toMatchObject({ error_code: 0 });
    for (const signal of [99999, -9, 65]) {
      const item = await legacy(2, 9303, { alg: 2, signal, delay: 100, repeat: 1 });
      expect(item, `signal ${signal}`).toMatchObject({ state: 6, error_code: 103 });
      expect(item.error_message).toContain("signal");
    }
    await until(() => legacy(1, 9303, {}), (item) => item.state === 1, 15_000, "the legacy task to run");
    expect(await legacy(2, 9303, { alg: 2, signal: 9, delay: 100, repeat: 1 })).toMatchObject({ error_code: 0 });
  });
});
