import { mkdtemp, readFile, rm, symlink, writeFile, access } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * What the original HCE clients do against a drce node, framed as they frame it: a DEALER with
 * an identity sends `[id, body]` (the data gateway, optionally `[id, body, route]`) or the admin
 * body `handler<TAB>command<TAB>params<TAB>`, and the replies are read as they read them: admin
 * replies split on tabs with OK or ERROR first and `name=value` fields, DRCE replies as the JSON
 * array of result items (in the cover when one went in).
 */

interface ResultItem {
  error_code: number;
  error_message: string;
  id: number | string;
  host: string;
  port: number;
  state: number;
  stdout: string;
  stderror: string;
  files: { name: string; data: string; action: number }[];
  subtasks: ResultItem[];
}

/** An admin reply as the Python NodeManager and the PHP manager parse it. */
interface AdminReply {
  code: string;
  fields: string[];
  properties: Record<string, string>;
}

const uid = (prefix: string): string => `${prefix}-${randomBytes(4).toString("hex")}`;
const closers: (() => void)[] = [];
let node: TestNode;
let allowed: string;
let outside: string;

beforeAll(async () => {
  allowed = await mkdtemp(join(tmpdir(), "drce-allowed-"));
  outside = await mkdtemp(join(tmpdir(), "drce-outside-"));
  node = await startNode({ zmqListen: "127.0.0.1:0", adminZmqListen: "127.0.0.1:0", allowedDirs: [allowed], name: "originals" });
}, 30_000);

afterAll(async () => {
  for (const close of closers) close();
  await node?.stop();
  await rm(allowed, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

function dealer(endpoint: string): Dealer {
  // The originals give every client an identity ("HCE-CLU-..."), admin sockets linger 0.
  const socket = new Dealer({ routingId: uid("HCE-CLU"), linger: 0, receiveTimeout: 20_000 });
  socket.connect(endpoint);
  closers.push(() => socket.close());
  return socket;
}

function parseAdmin(text: string): AdminReply {
  const [code = "", ...fields] = text.split("\t");
  const properties: Record<string, string> = {};
  for (const field of fields) {
    const parts = field.split("=");
    if (parts.length > 1) properties[parts[0]!] = parts[1]!;
  }
  return { code, fields, properties };
}

/** One admin command over a fresh admin connection, as both originals do. */
async function admin(handler: string, command: string, params = "", endpoint = node.adminZmqEndpoint): Promise<AdminReply> {
  const socket = dealer(endpoint);
  const id = uid("ID");
  await socket.send([id, `${handler}\t${command}\t${params}\t`]);
  const [replyId, body] = await socket.receive();
  expect(replyId!.toString()).toBe(id);
  return parseAdmin(body!.toString());
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64");

/** A DRCE request as the PHP client builds it (hce_drce_exec_prepare_request_admin). */
function drceRequest(type: number, id: number | string, data: unknown, subtasks: unknown[] = []): string {
  return JSON.stringify({ type, data: b64(data), id, subtasks });
}

/** A set-task data as the PHP client fills it: every session key, PHP's [] for empty maps. */
function phpSetData(command: string, session: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    session: { type: 0, port: 0, user: "", password: "", shell: "", environment: [], "": "", timeout: 0, tmode: 1, time_max: 30000, cleanup: 1, ...session },
    command,
    input: "",
    files: [],
    ...extra,
  };
}

/** The DRCE command through the admin socket, as the DTM sends check, terminate, get and delete. */
async function drceOverAdmin(request: string, endpoint = node.adminZmqEndpoint): Promise<ResultItem[]> {
  const reply = await admin("DataProcessorData", "DRCE", request, endpoint);
  expect(reply.code).toBe("OK");
  // The DTM takes the second field as the DRCE result JSON.
  return JSON.parse(reply.fields[0]!) as ResultItem[];
}

/** A request through the data gateway, in the clients' cover, with an optional route frame. */
async function overGateway(request: string, route?: string): Promise<ResultItem[]> {
  const socket = dealer(node.zmqEndpoint);
  const id = uid("ID");
  const cover = JSON.stringify({ type: 2, data: request, ttl: 3000 });
  await socket.send(route === undefined ? [id, cover] : [id, cover, route]);
  const [replyId, body] = await socket.receive();
  expect(replyId!.toString()).toBe(id);
  const reply = JSON.parse(body!.toString()) as { type: number; data: string; ttl: number };
  expect(reply).toMatchObject({ type: 2, ttl: 3000 });
  return JSON.parse(reply.data) as ResultItem[];
}

const decode = (text: string): string => Buffer.from(text, "base64").toString("utf8");
const adminPort = (): number => Number(new URL(node.adminZmqEndpoint.replace("tcp://", "http://")).port);

describe("admin replies as the originals parse them", () => {
  it("answers PROPERTIES for every handler a manager asks, so the node is drawn as a replica", async () => {
    const replies = new Map<string, AdminReply>();
    for (const handler of ["Admin", "RouterServerProxy", "DataServerProxy", "DataClientProxy", "DataProcessorData", "DataClientData", "DataReducerProxy"]) {
      replies.set(handler, await admin(handler, "PROPERTIES"));
    }
    for (const handler of ["Admin", "DataProcessorData", "DataClientData"]) expect(replies.get(handler)!.code).toBe("OK");
    for (const handler of ["RouterServerProxy", "DataServerProxy", "DataClientProxy", "DataReducerProxy"]) {
      expect(replies.get(handler)!.code).toBe("ERROR");
      expect(replies.get(handler)!.fields[0]).toContain("a drce data node has");
    }
    const own = replies.get("Admin")!.properties;
    expect(own).toMatchObject({ name: "originals", clientIdentity: "originals", connectionString: node.adminZmqEndpoint });
    expect(Number(own["startedAt"])).toBeGreaterThan(Date.now() - 600_000);
    expect(replies.get("DataClientData")!.properties["connectionString"]).toBe(node.zmqEndpoint);
    const drce = replies.get("DataProcessorData")!.properties;
    expect(drce["countSyncTasks"]).toMatch(/^[0-9]+$/);
    expect(JSON.parse(drce["timeSyncTask"]!)).toHaveProperty("avg");
    // The PHP manager's formatted view splits this on "," and ":".
    const formatted = Object.fromEntries(drce["drceDataStorageProperties"]!.split(",").map((kv) => kv.split(":")));
    expect(formatted).toHaveProperty("countAsyncTasks");
    expect(formatted).toHaveProperty("timeSyncTask.max");
  });

  it("answers TIME, ECHO, STAT, NODE_RESOURCE_USAGE and the task lists as OK with fields", async () => {
    const time = await admin("Admin", "TIME");
    expect(time.code).toBe("OK");
    expect(Number(time.properties["time"])).toBeGreaterThanOrEqual(0);
    expect(await admin("Admin", "ECHO", "param1@param2")).toMatchObject({ code: "OK", fields: ["param1@param2"] });
    const usage = await admin("DataProcessorData", "NODE_RESOURCE_USAGE");
    expect(Object.keys(usage.properties)).toEqual(["CPU", "IOWAIT", "VRAM", "RRAM", "DISK", "PROCESSES", "THREADS", "LOADAVG", "balancing"]);
    expect(usage.properties["balancing"]!.split(",").map(Number)).toEqual(["CPU", "IOWAIT", "VRAM", "RRAM", "DISK", "PROCESSES", "THREADS", "LOADAVG"].map((k) => Number(usage.properties[k])));
    const stat = await admin("DataProcessorData", "STAT");
    expect(stat.code).toBe("OK");
    expect(stat.properties).toHaveProperty("countSyncTasksFail");
    for (const command of ["DRCE_GET_TASKS", "DRCE_GET_TASKS_INFO"]) {
      const reply = await admin("DataProcessorData", command);
      expect(reply.code).toBe("OK");
      expect(Array.isArray(JSON.parse(reply.fields[0]!))).toBe(true);
    }
  });

  it("resets the statistics counters on RESET_STAT_COUNTERS", async () => {
    await drceOverAdmin(drceRequest(0, uid("count"), phpSetData("true", { cleanup: 0 })));
    expect(Number((await admin("DataProcessorData", "STAT")).properties["countSyncTasks"])).toBeGreaterThanOrEqual(1);
    const reset = await admin("DataProcessorData", "RESET_STAT_COUNTERS");
    expect(reset).toMatchObject({ code: "OK", properties: { countSyncTasks: "0", countAsyncTasks: "0" } });
    expect((await admin("DataProcessorData", "STAT")).properties["countSyncTasks"]).toBe("0");
  });

  it("gets and sets the log level with LLGET and LLSET, refusing an unknown level", async () => {
    expect(await admin("Admin", "LLGET")).toMatchObject({ code: "OK", properties: { log: "silent" } });
    expect(await admin("Admin", "LLSET", "warn")).toMatchObject({ code: "OK", properties: { log: "warn", previous: "silent" } });
    expect((await admin("Admin", "LLGET")).properties["log"]).toBe("warn");
    const bad = await admin("Admin", "LLSET", "loud");
    expect(bad.code).toBe("ERROR");
    expect(bad.fields[0]).toContain("LLSET needs a log level");
    await admin("Admin", "LLSET", "silent");
  });

  it("answers each command that means nothing on a data node with ERROR saying so", async () => {
    for (const command of ["HEARTBEAT_DELAY_GET", "HEARTBEAT_TIMEOUT_SET", "HEARTBEAT_MODE_GET", "MMGET", "MMSET", "MPMGET", "MRCSSET", "POLL_TIMEOUT_GET", "POLL_TIMEOUT_SET", "PROPERTY_INTERVAL_SET", "DUMP_INTERVAL_GET", "DUMP_INTERVAL_SET", "NODE_ROUTES", "NODE_RECOVER_NOTIFICATION_CONNECTION", "REBUILD_CLIENT_CONNECTION", "UPDATE_SCHEMA"]) {
      const reply = await admin("Admin", command, "5");
      expect(reply.code, command).toBe("ERROR");
      expect(reply.fields).toHaveLength(1);
      expect(reply.fields[0]).toContain(`${command} has no meaning here`);
    }
    expect(await admin("Admin", "PROPERTY_INTERVAL_GET")).toMatchObject({ code: "OK", properties: { interval: "1000" } });
  });

  it("answers an unknown command and a malformed message with ERROR, one field without '='", async () => {
    for (const body of ["Admin\tBAD_COMMAND\tparam1\t", "no tabs at all"]) {
      const socket = dealer(node.adminZmqEndpoint);
      await socket.send(["ID-1", body]);
      const [, reply] = await socket.receive();
      const parsed = parseAdmin(reply!.toString());
      expect(parsed.code).toBe("ERROR");
      expect(parsed.fields).toHaveLength(1);
      expect(Object.keys(parsed.properties)).toEqual([]);
    }
  });
});

describe("the DRCE admin command", () => {
  it("runs a whole set request and answers OK<TAB><result JSON>, the DTM's way", async () => {
    const id = String(1_000_000 + Math.floor(Math.random() * 1_000_000));
    const [item] = await drceOverAdmin(drceRequest(0, id, phpSetData("sort", {}, { input: "def\nabc\n123\n" })));
    expect(item).toMatchObject({ error_code: 0, state: 0, id });
    expect(decode(item!.stdout)).toBe("123\nabc\ndef\n");
    expect(item!.stderror).toBe("");
  });

  it("follows an async task up at the host and port of its set reply: check, get, delete (data W10=)", async () => {
    const id = 4_000_000 + Math.floor(Math.random() * 1_000_000);
    const [set] = await overGateway(drceRequest(0, id, phpSetData("echo started; sleep 0.3; echo done", { tmode: 2, cleanup: 0 })));
    expect(set).toMatchObject({ id, error_code: 0, host: "127.0.0.1", port: adminPort() });
    expect([2, 8, 1]).toContain(set!.state);
    // The DTM and the PHP tests take host:port of the reply as the admin address.
    const follow = `tcp://${set!.host}:${set!.port}`;
    const final = await until(async () => (await drceOverAdmin(drceRequest(1, id, { type: 1 }), follow))[0]!, (item) => item.state === 0, 20_000, "the task to finish");
    expect(final).toMatchObject({ id, error_code: 0, port: adminPort() });
    const [got] = await drceOverAdmin(drceRequest(3, id, { type: 2 }), follow);
    expect(decode(got!.stdout)).toBe("started\ndone\n");
    // PHP's json_encode(array()) for the delete request's data.
    const del = JSON.stringify({ type: 4, data: "W10=", id, subtasks: [] });
    const [deleted] = await drceOverAdmin(del, follow);
    expect(deleted).toMatchObject({ id, state: 9, error_code: 0 });
    expect((await drceOverAdmin(drceRequest(1, id, { type: 1 }), follow))[0]).toMatchObject({ id, state: 3 });
  });

  it("answers a request that is not JSON with its error item inside an OK reply, and empty params with ERROR", async () => {
    const [item] = await drceOverAdmin("{not json");
    expect(item).toMatchObject({ error_code: 1, state: 6 });
    const empty = await admin("DataProcessorData", "DRCE", "");
    expect(empty.code).toBe("ERROR");
    expect(empty.fields[0]).toContain("DRCE needs a DRCE request JSON");
  });
});

describe("the reported host and port", () => {
  it("gets and sets what results report with DRCE_GET/SET_HOST and DRCE_GET/SET_PORT", async () => {
    expect(await admin("DataProcessorData", "DRCE_GET_HOST")).toMatchObject({ code: "OK", properties: { host: "127.0.0.1" } });
    expect(await admin("DataProcessorData", "DRCE_GET_PORT")).toMatchObject({ code: "OK", properties: { port: String(adminPort()) } });
    try {
      expect(await admin("DataProcessorData", "DRCE_SET_HOST", "localhost")).toMatchObject({ code: "OK", properties: { host: "localhost", previous: "127.0.0.1" } });
      expect(await admin("DataProcessorData", "DRCE_SET_PORT", "5548")).toMatchObject({ code: "OK", properties: { port: "5548", previous: String(adminPort()) } });
      const [item] = await drceOverAdmin(drceRequest(1, 424242, { type: 1 }));
      expect(item).toMatchObject({ state: 3, host: "localhost", port: 5548 });
      for (const [command, value] of [["DRCE_SET_PORT", "0"], ["DRCE_SET_PORT", "70000"], ["DRCE_SET_PORT", "x"], ["DRCE_SET_HOST", ""], ["DRCE_SET_HOST", "a b"]] as const) {
        const reply = await admin("DataProcessorData", command, value);
        expect(reply.code, `${command} ${value}`).toBe("ERROR");
      }
    } finally {
      await admin("DataProcessorData", "DRCE_SET_HOST", "127.0.0.1");
      await admin("DataProcessorData", "DRCE_SET_PORT", String(adminPort()));
    }
  });
});

describe("data-request quirks of the originals", () => {
  it("creates, reads and deletes files by absolute name inside an --allow-dir directory", async () => {
    const id = uid("abs");
    const created = join(allowed, `${id}-created.txt`);
    const stale = join(allowed, `${id}-stale.txt`);
    const doomed = join(allowed, `${id}-doomed.txt`);
    await writeFile(stale, "old");
    const data = phpSetData(`cat ${created}; test -e ${stale} || echo stale-gone; echo produced > ${doomed}`, { cleanup: 0 }, {
      files: [
        { name: created, data: "hello", action: 1 },
        { name: stale, data: "", action: 2 },
        { name: doomed, data: "", action: 4 | 8 },
      ],
    });
    const [item] = await overGateway(drceRequest(0, id, data));
    expect(item).toMatchObject({ error_code: 0, state: 0 });
    expect(decode(item!.stdout)).toBe("hellostale-gone\n");
    expect(item!.files).toEqual([{ name: doomed, data: "produced\n", action: 12 }]);
    expect(await readFile(created, "utf8")).toBe("hello");
    await expect(access(stale)).rejects.toThrow();
    await expect(access(doomed)).rejects.toThrow();
  });

  it.each([
    ["outside every allowed directory", (): string => join(outside, "x.txt")],
    ["with a .. segment", (): string => `${allowed}/../x.txt`],
    ["naming the allowed directory itself", (): string => allowed],
  ])("refuses an absolute name %s with error 201", async (_what, name) => {
    const [item] = await overGateway(drceRequest(0, uid("abs-out"), phpSetData("true", {}, { files: [{ name: name(), data: "x", action: 1 }] })));
    expect(item).toMatchObject({ state: 6, error_code: 201 });
    await expect(access(join(outside, "x.txt"))).rejects.toThrow();
  });

  it("refuses an absolute name through a symlink that points out, for each action", async () => {
    const link = join(allowed, uid("link-out"));
    await symlink(outside, link);
    for (const [action, code] of [[1, 201], [2, 202]] as const) {
      const [item] = await overGateway(drceRequest(0, uid("abs-link"), phpSetData("true", {}, { files: [{ name: join(link, "f.txt"), data: "x", action }] })));
      expect(item, `action ${action}`).toMatchObject({ error_code: code });
    }
    for (const [action, code] of [[4, 203], [8, 204]] as const) {
      const [item] = await overGateway(drceRequest(0, uid("abs-link"), phpSetData("true", {}, { files: [{ name: join(link, "f.txt"), data: "", action }] })));
      expect(item, `action ${action}`).toMatchObject({ error_code: code });
    }
    await expect(access(join(outside, "f.txt"))).rejects.toThrow();
  });

  it("takes PHP's [] wherever an object is expected: data, session, limits, environment, a file item", async () => {
    const id = uid("php-empty");
    const data = { session: [], command: "echo ok", input: "", files: [], limits: [] };
    const [item] = await overGateway(drceRequest(0, id, data));
    expect(item).toMatchObject({ error_code: 0, state: 0 });
    expect(decode(item!.stdout)).toBe("ok\n");
    const [checked] = await overGateway(JSON.stringify({ type: 1, data: "W10=", id, subtasks: [] }));
    expect(checked).toMatchObject({ id, state: 0 });
    const [refused] = await overGateway(drceRequest(0, uid("php-file"), phpSetData("true", { environment: [] }, { files: [[]] })));
    // An empty file item is an empty object: a file without a name.
    expect(refused).toMatchObject({ state: 6, error_code: 201 });
    expect(refused!.error_message).toContain("empty name");
    const [deleted] = await overGateway(JSON.stringify({ type: 4, data: "W10=", id, subtasks: [] }));
    expect(deleted).toMatchObject({ id, state: 9 });
  });

  it("echoes the id in the form it came: a numeric string stays a string, a number a number", async () => {
    const n = 7_000_000 + Math.floor(Math.random() * 1_000_000);
    const [asString] = await overGateway(drceRequest(0, String(n), phpSetData("true", { cleanup: 0 })));
    expect(asString!.id).toBe(String(n));
    const [asNumber] = await overGateway(drceRequest(1, n, { type: 1 }));
    expect(asNumber!.id).toBe(n);
    const [checkString] = await drceOverAdmin(drceRequest(1, String(n), { type: 1 }));
    expect(checkString).toMatchObject({ id: String(n), state: 0 });
    const [unknownString] = await overGateway(drceRequest(1, "31337313", { type: 1 }));
    expect(unknownString).toMatchObject({ id: "31337313", state: 3 });
  });

  it("accepts the route frame and the cover's ttl, answering as without them", async () => {
    const route = JSON.stringify({ role: 0, nodes: ["n1"], alg: 1, alg_weight: [], limits: [], task_type: 0 });
    const [item] = await overGateway(drceRequest(0, uid("routed"), phpSetData("echo routed")), route);
    expect(item).toMatchObject({ error_code: 0, state: 0 });
    expect(decode(item!.stdout)).toBe("routed\n");
    // The route inside the cover instead of a third frame.
    const socket = dealer(node.zmqEndpoint);
    const cover = JSON.stringify({ type: 2, data: drceRequest(0, uid("routed-in-cover"), phpSetData("echo inside")), ttl: 50, route: JSON.parse(route) as unknown });
    await socket.send(["ID-route", cover]);
    const [, body] = await socket.receive();
    const reply = JSON.parse(body!.toString()) as { data: string; ttl: number };
    expect(reply.ttl).toBe(50);
    const [inside] = JSON.parse(reply.data) as ResultItem[];
    expect(decode(inside!.stdout)).toBe("inside\n");
  });
});

describe("async subtasks under a parent with cleanup", () => {
  it("runs every subtask to its end and keeps it checkable; the parent goes once its tree is final", async () => {
    const base = 8_000_000 + Math.floor(Math.random() * 100_000) * 10;
    const [root, s1, s2, s3, s4, s5, s6] = [0, 1, 2, 3, 4, 5, 6].map((k) => base + k) as [number, number, number, number, number, number, number];
    const leaf = (id: number, tmode: number, subtasks: unknown[] = []): unknown => JSON.parse(drceRequest(0, id, phpSetData("sleep 0.2; echo $DRCE_TASK_ID", { tmode, cleanup: 0 }), subtasks));
    // The original nesting: 501 -> 503, 504 (sync) and 502 (async) -> 505, 506.
    const subtasks = [leaf(s1, 1, [leaf(s3, 1), leaf(s4, 1)]), leaf(s2, 2, [leaf(s5, 1), leaf(s6, 1)])];
    const [reply] = await overGateway(drceRequest(0, root, phpSetData("echo root", { tmode: 1, cleanup: 1 }), subtasks));
    expect(reply).toMatchObject({ id: root, state: 0, error_code: 0 });
    const ids = (item: ResultItem): (number | string)[] => [item.id, ...item.subtasks.flatMap(ids)];
    expect(ids(reply!)).toEqual([root, s1, s3, s4, s2, s5, s6]);
    // The async part had not finished when the reply left.
    const asyncPart = reply!.subtasks[1]!;
    expect(asyncPart.state).not.toBe(0);
    // Each async subtask is checked until it finishes: never "not found" on the way.
    for (const id of [s2, s5, s6]) {
      const seen: number[] = [];
      await until(async () => {
        const [item] = await drceOverAdmin(drceRequest(1, id, { type: 1 }));
        seen.push(item!.state);
        return item!.state;
      }, (state) => state === 0 || state === 3, 30_000, `subtask ${id} to finish`);
      expect(seen, `states of ${id}`).not.toContain(3);
    }
    const [fetched] = await drceOverAdmin(drceRequest(3, s5, { type: 2 }));
    expect(decode(fetched!.stdout)).toBe(`${s5}\n`);
    // Once the tree is final, the parent and what its reply delivered go; the rest stays.
    for (const id of [root, s1, s3, s4]) {
      await until(async () => (await drceOverAdmin(drceRequest(1, id, { type: 1 })))[0]!.state, (state) => state === 3, 10_000, `task ${id} to be cleaned up`);
    }
    for (const id of [s2, s5, s6]) expect((await drceOverAdmin(drceRequest(1, id, { type: 1 })))[0]).toMatchObject({ id, state: 0 });
  });
});

describe("SHUTDOWN", () => {
  it("obeys the token: a client without it gets nothing through, one with it shuts the node down", async () => {
    const token = "shutdown-token";
    const guarded = await startNode({ token, adminZmqListen: "127.0.0.1:0" });
    let settled = false;
    void guarded.app.shutdownRequested.then(() => (settled = true));
    try {
      const anonymous = new Dealer({ routingId: uid("HCE-CLU"), linger: 0, receiveTimeout: 1000 });
      closers.push(() => anonymous.close());
      anonymous.plainUsername = "drce";
      anonymous.plainPassword = "wrong";
      anonymous.connect(guarded.adminZmqEndpoint);
      await anonymous.send(["ID-1", "Admin\tSHUTDOWN\t\t"]);
      await expect(anonymous.receive()).rejects.toThrow();
      expect(settled).toBe(false);

      const operator = new Dealer({ routingId: uid("HCE-CLU"), linger: 0, receiveTimeout: 10_000 });
      closers.push(() => operator.close());
      operator.plainUsername = "drce";
      operator.plainPassword = token;
      operator.connect(guarded.adminZmqEndpoint);
      await operator.send(["ID-2", "Admin\tSHUTDOWN\t\t"]);
      const [, body] = await operator.receive();
      expect(parseAdmin(body!.toString())).toMatchObject({ code: "OK", properties: { shutdown: "started" } });
      await until(() => settled, (v) => v, 5000, "the shutdown request");
    } finally {
      await guarded.stop();
    }
  });
});

describe("the same commands over HTTP, in drce's JSON envelope", () => {
  it("runs DRCE requests and says 501 not_applicable for a command without meaning here", async () => {
    const request = drceRequest(0, uid("http-drce"), phpSetData("echo via-http"));
    const response = await fetch(`${node.url}/drce/admin/DRCE?handler=DataProcessorData&parameters=${encodeURIComponent(request)}`);
    expect(response.status).toBe(200);
    const envelope = (await response.json()) as { status: string; data: ResultItem[] };
    expect(envelope.status).toBe("OK");
    expect(decode(envelope.data[0]!.stdout)).toBe("via-http\n");
    const refused = await fetch(`${node.url}/drce/admin/MMGET`);
    expect(refused.status).toBe(501);
    expect(await refused.json()).toMatchObject({ status: "ERROR", error: { code: "not_applicable" } });
    const manager = await fetch(`${node.url}/drce/admin/PROPERTIES?handler=DataServerProxy`);
    expect(manager.status).toBe(501);
  });
});
