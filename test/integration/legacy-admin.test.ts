import { create } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Dealer, Request } from "zeromq";
import { TaskMode, TaskSpecSchema } from "../../gen/drce/v1/task_pb.js";
import { adminCommands } from "../../src/gateway/admin-command-table.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * The legacy admin commands against a real node: over its ZeroMQ admin socket (DEALER and
 * REQ clients on a random loopback port), answered in the original text framing, and over
 * `GET /drce/admin/<COMMAND>`, answered in drce's JSON envelope.
 */

interface Envelope {
  status: "OK" | "ERROR";
  handler: string;
  command: string;
  data?: unknown;
  error?: { code: string; message: string };
}

const uid = (prefix: string): string => `${prefix}-${randomBytes(4).toString("hex")}`;
const closers: (() => void)[] = [];
let node: TestNode;
let asyncId: string;
let syncId: string;

beforeAll(async () => {
  node = await startNode({ adminZmqListen: "127.0.0.1:0", sampleIntervalMs: 100, name: "legacy-admin" });
  syncId = uid("sync");
  asyncId = uid("async");
  await node.client.submitTask({ task: create(TaskSpecSchema, { id: syncId, command: "cat", input: Buffer.from("12345") }) });
  await node.client.submitTask({ task: create(TaskSpecSchema, { id: asyncId, command: "exit 4", mode: TaskMode.ASYNC }) });
  // Both tasks are counted once they are final.
  await until(() => node.app.core.check(asyncId, false), (v) => v.status.state === 0, 10_000, "the async task to finish");
  await until(() => node.app.reports.lastSeq, (seq) => seq >= 1, 10_000, "a host sample");
}, 30_000);

afterAll(async () => {
  for (const close of closers) close();
  await node?.stop();
});

function dealer(identity = uid("admin-client")): Dealer {
  const socket = new Dealer({ routingId: identity, linger: 0, receiveTimeout: 10_000 });
  socket.connect(node.adminZmqEndpoint);
  closers.push(() => socket.close());
  return socket;
}

/** A text reply read as the original clients read it: split on tabs, OK or ERROR first, then fields. */
interface TextReply {
  status: "OK" | "ERROR";
  /** The fields after the status, as sent. */
  fields: string[];
  /** The `name=value` fields, the value being what lies between the first and a second `=`. */
  properties: Record<string, string>;
}

function parseTextReply(text: string): TextReply {
  const [status, ...fields] = text.split("\t");
  expect(status === "OK" || status === "ERROR").toBe(true);
  const properties: Record<string, string> = {};
  for (const field of fields) {
    const [name = "", value] = field.split("=");
    if (value !== undefined) properties[name] = value;
  }
  return { status: status as "OK" | "ERROR", fields, properties };
}

/** Sends `[id, body]` from a DEALER and reads `[id, reply]`. */
async function overZmq(body: string, socket = dealer()): Promise<{ id: string; reply: TextReply }> {
  const id = uid("msg");
  await socket.send([id, body]);
  const [replyId, replyBody] = await socket.receive();
  return { id: replyId!.toString(), reply: parseTextReply(replyBody!.toString()) };
}

/** A property value as data: JSON objects parsed, numbers as numbers. */
function propertyValue(value: string): unknown {
  if (value.startsWith("{") || value.startsWith("[")) return JSON.parse(value) as unknown;
  return /^-?[0-9]+(\.[0-9]+)?$/.test(value) ? Number(value) : value;
}

/** The data a text reply carries, in the shape the JSON envelope gives it, for the shared expectations. */
function textData(command: string, reply: TextReply): unknown {
  switch (command) {
    case "DRCE_GET_TASKS":
    case "DRCE_GET_TASKS_INFO":
      return JSON.parse(reply.fields[0]!) as unknown;
    case "ECHO":
      return reply.fields[0];
    case "NODE_RESOURCE_USAGE": {
      const { balancing, ...usage } = reply.properties;
      expect(balancing!.split(",")).toHaveLength(8);
      return Object.fromEntries(Object.entries(usage).map(([k, v]) => [k, Number(v)]));
    }
    default:
      return Object.fromEntries(Object.entries(reply.properties).map(([k, v]) => [k, propertyValue(v)]));
  }
}

async function overHttp(path: string, init: RequestInit = {}): Promise<{ status: number; reply: Envelope; headers: Headers }> {
  const response = await fetch(`${node.url}${path}`, init);
  return { status: response.status, headers: response.headers, reply: (await response.json()) as Envelope };
}

/** What each command must answer, checked the same way over both transports. */
const expectations: Record<string, (data: unknown) => void> = {
  DRCE_GET_TASKS: (data) => {
    const tasks = data as { id: string; sdate: number; state: number; tmode: number }[];
    expect(tasks.find((t) => t.id === syncId)).toMatchObject({ state: 0, tmode: 1 });
    expect(tasks.find((t) => t.id === asyncId)).toMatchObject({ state: 0, tmode: 2 });
    for (const t of tasks) expect(t.sdate).toBeGreaterThan(Date.now() - 600_000);
  },
  DRCE_GET_TASKS_INFO: (data) => {
    const infos = data as { id: string; info: string; modified: number }[];
    const entry = infos.find((t) => t.id === asyncId);
    expect(entry).toBeDefined();
    expect(JSON.parse(entry!.info)).toMatchObject({ id: asyncId, state: 0, exitStatus: 4, mode: 2 });
    expect(entry!.modified).toBeGreaterThan(Date.now() - 600_000);
  },
  NODE_RESOURCE_USAGE: (data) => {
    const usage = data as Record<string, number>;
    expect(Object.keys(usage)).toEqual(["CPU", "IOWAIT", "VRAM", "RRAM", "DISK", "PROCESSES", "THREADS", "LOADAVG"]);
    for (const key of ["CPU", "IOWAIT", "VRAM", "RRAM", "DISK", "PROCESSES", "THREADS"]) {
      expect(usage[key]).toBeGreaterThanOrEqual(0);
      expect(usage[key]).toBeLessThanOrEqual(100);
    }
    expect(usage["RRAM"]).toBeGreaterThan(0);
  },
  STAT: (data) => checkStats(data),
  PROPERTIES: (data) => checkStats(data),
  NODE_INFO: (data) => {
    expect(data).toMatchObject({ name: "legacy-admin", role: "data", version: "0.1.0", limits: { sampleIntervalMs: 100, tokenRequired: false } });
    expect((data as { adminZmqEndpoint: string }).adminZmqEndpoint).toBe(node.adminZmqEndpoint);
  },
  ECHO: (data) => expect(data).toBe("ping 1 2"),
};

function checkStats(data: unknown): void {
  const stats = data as Record<string, unknown>;
  const figures = [
    "timeAsyncTask",
    "timeSyncTask",
    "sizeInputBufferSyncTasks",
    "sizeOutputBufferSyncTasks",
    "sizeInputBufferAsyncTasks",
    "sizeOutputBufferAsyncTasks",
    "cpuUsageAsyncTasks",
    "memoryUsageAsyncTasks",
    "countSyncTasksForMinute",
    "countAsyncTasksForMinute",
  ];
  for (const name of figures) expect(Object.keys(stats[name] as object)).toEqual(["min", "avg", "max"]);
  expect(stats["countSyncTasks"]).toBe(1);
  expect(stats["countAsyncTasks"]).toBe(1);
  expect(stats["countSyncTasksFail"]).toBe(0);
  expect(stats["countAsyncTasksFail"]).toBe(1);
  expect(stats["sizeInputBufferSyncTasks"]).toEqual({ min: 5, avg: 5, max: 5 });
  expect(stats["sizeOutputBufferSyncTasks"]).toEqual({ min: 5, avg: 5, max: 5 });
  expect((stats["countSyncTasksForMinute"] as { max: number }).max).toBe(1);
}

describe("legacy admin commands over ZeroMQ", () => {
  it("binds a random loopback port for the test", () => {
    expect(node.adminZmqEndpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
  });

  for (const command of adminCommands) {
    it(`answers ${command} from a DEALER as [id, OK<TAB>fields]`, async () => {
      const { id, reply } = await overZmq(`DataProcessorData\t${command}\t${command === "ECHO" ? "ping 1 2" : ""}\t`);
      expect(reply.status).toBe("OK");
      expect(id).toMatch(/^msg-/);
      expectations[command]!(textData(command, reply));
    });
  }

  it("answers a REQ client (empty delimiter frame) with the text reply alone", async () => {
    const socket = new Request({ linger: 0, receiveTimeout: 10_000 });
    socket.connect(node.adminZmqEndpoint);
    closers.push(() => socket.close());
    await socket.send("Admin\tECHO\tping 1 2\t");
    const [body] = await socket.receive();
    expect(body!.toString()).toBe("OK\tping 1 2");
  });

  it("accepts a message without the trailing tab or parameters", async () => {
    expect((await overZmq("Admin\tECHO")).reply).toMatchObject({ status: "OK", fields: [""] });
    expect((await overZmq("Admin\tNODE_RESOURCE_USAGE\t")).reply.status).toBe("OK");
  });

  it("answers an unknown command with ERROR naming it", async () => {
    const { reply } = await overZmq("Admin\tNO_SUCH_COMMAND\t\t");
    expect(reply.status).toBe("ERROR");
    expect(reply.fields[0]).toContain("unknown admin command");
    expect(reply.fields[0]).toContain("NO_SUCH_COMMAND");
  });

  it("answers malformed messages with ERROR and keeps serving", async () => {
    const socket = dealer();
    for (const body of ["", "no tabs at all", "Admin\t\tx\t", "a\tb\tc\td\te\t"]) {
      const { reply } = await overZmq(body, socket);
      expect(reply.status).toBe("ERROR");
      expect(reply.fields[0]).toMatch(/admin message/);
    }
    expect((await overZmq("Admin\tECHO\tstill here\t", socket)).reply).toMatchObject({ status: "OK", fields: ["still here"] });
  });

  it("answers a DEALER that sent the body without an id frame", async () => {
    const socket = dealer();
    await socket.send("Admin\tECHO\tx\t");
    const frames = await socket.receive();
    const reply = parseTextReply(frames[frames.length - 1]!.toString());
    expect(reply.status).toBe("ERROR");
    expect(reply.fields[0]).toContain("[id, body]");
  });
});

describe("legacy admin commands over HTTP", () => {
  for (const command of adminCommands) {
    it(`answers GET /drce/admin/${command}`, async () => {
      const { status, reply, headers } = await overHttp(`/drce/admin/${command}?parameters=${encodeURIComponent("ping 1 2")}`);
      expect(status).toBe(200);
      expect(headers.get("content-type")).toBe("application/json");
      expect(reply).toMatchObject({ status: "OK", command });
      expectations[command]!(reply.data);
    });
  }

  it("answers an unknown command with 404 and a JSON error", async () => {
    const { status, reply } = await overHttp("/drce/admin/NO_SUCH_COMMAND");
    expect(status).toBe(404);
    expect(reply).toMatchObject({ status: "ERROR", command: "NO_SUCH_COMMAND", error: { code: "unknown_command" } });
  });

  it("answers a path without a command with 400, and other methods with 405", async () => {
    expect(await overHttp("/drce/admin/")).toMatchObject({ status: 400, reply: { error: { code: "malformed" } } });
    expect(await overHttp("/drce/admin")).toMatchObject({ status: 400, reply: { error: { code: "malformed" } } });
    expect(await overHttp("/drce/admin/STAT/extra")).toMatchObject({ status: 400, reply: { error: { code: "malformed" } } });
    const post = await overHttp("/drce/admin/STAT", { method: "POST", body: "x" });
    expect(post).toMatchObject({ status: 405, reply: { error: { code: "method_not_allowed" } } });
    expect(post.headers.get("allow")).toBe("GET");
  });

  it("requires the bearer token when the node has one", async () => {
    const guarded = await startNode({ token: "admin-http-token" });
    try {
      const anonymous = await fetch(`${guarded.url}/drce/admin/NODE_RESOURCE_USAGE`);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get("www-authenticate")).toBe("Bearer");
      expect(await anonymous.json()).toMatchObject({ status: "ERROR", error: { code: "unauthenticated" } });
      const wrong = await fetch(`${guarded.url}/drce/admin/STAT`, { headers: { authorization: "Bearer nope" } });
      expect(wrong.status).toBe(401);
      // Even an unknown command is refused before it is looked at.
      expect((await fetch(`${guarded.url}/drce/admin/NOPE`)).status).toBe(401);
      const right = await fetch(`${guarded.url}/drce/admin/STAT`, { headers: { authorization: "Bearer admin-http-token" } });
      expect(right.status).toBe(200);
      expect(await right.json()).toMatchObject({ status: "OK", data: { countSyncTasks: 0 } });
    } finally {
      await guarded.stop();
    }
  });
});
