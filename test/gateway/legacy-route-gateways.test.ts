import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { createPlacer, type Candidate } from "../../src/cluster/placement.js";
import { ErrorCode } from "../../src/domain/errors.js";
import type { NodeResult, UsageFigure } from "../../src/domain/placement.js";
import { taskSpec, type TaskSpec } from "../../src/domain/task.js";
import type { TaskView, ViewOrigin } from "../../src/domain/view.js";
import { handleLegacyHttp } from "../../src/gateway/http.js";
import type { LegacyResultItem } from "../../src/gateway/legacy-codec.js";
import { createLegacyHandler, type LegacyHandler } from "../../src/gateway/legacy-handler.js";
import { createZmqGateway } from "../../src/gateway/zmq.js";
import { createFakeCore, testIdentity, viewOf } from "./fake-core.js";
import { cover, encodeSetRequest, legacyRequest, uncover } from "./legacy-request-encoder.js";

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
});

const idle: Record<UsageFigure, number> = { cpu: 0, iowait: 0, vram: 0, rram: 0, disk: 0, processes: 0, threads: 0, loadavg: 0 };

/** The cluster the fake manager places on: two nodes up (n2 the less loaded), one down. */
const candidates: Candidate[] = [
  { name: "n1", labels: {}, state: "up", usage: { ...idle, cpu: 40, loadavg: 30 }, freeSlots: 2 },
  { name: "n2", labels: {}, state: "up", usage: { ...idle, cpu: 60, loadavg: 10 }, freeSlots: 2 },
  { name: "n3", labels: {}, state: "down", usage: idle, freeSlots: 0 },
];

/** Where each node says it is, as its own replies name it. */
const address = (node: string): ViewOrigin => ({ host: `10.0.0.${node.slice(1)}`, port: 9000 + Number(node.slice(1)), node });

/**
 * A fake manager core: it places each task with a real placer (so 5000, 5001 and 5002 are the
 * placer's own refusals) and answers as a manager does, a one-node task with that node's view, a
 * fan-out with one item per node, the down node's item unreachable without a result.
 */
function managerCore() {
  const placer = createPlacer({ mode: "balanced", weights: {} });
  return createFakeCore({
    submit: (spec: TaskSpec) => {
      const choice = placer.place(spec.placement, candidates);
      if (choice.kind === "one") return { view: { ...viewOf(spec, 0), placedOn: choice.node, origin: address(choice.node) }, existing: false };
      const items: NodeResult[] = [
        ...choice.nodes.map((node): NodeResult => {
          const view: TaskView = { ...viewOf(spec, 0), stdout: new TextEncoder().encode(`Linux ${node}\n`), origin: address(node) };
          return { node, status: "finished", view, errorCode: 0, errorMessage: "" };
        }),
        ...choice.down.map((node): NodeResult => ({ node, status: "unreachable", errorCode: ErrorCode.InternalFo, errorMessage: `node ${node} is unreachable` })),
      ].sort((a, b) => (a.node < b.node ? -1 : 1));
      return { view: { ...viewOf(spec, 0), nodes: items }, existing: false };
    },
  });
}

async function zmqManager(): Promise<{ endpoint: string; core: ReturnType<typeof managerCore> }> {
  const core = managerCore();
  const gateway = await createZmqGateway({ handler: createLegacyHandler({ core, identity: testIdentity }), endpoint: "tcp://127.0.0.1:0" });
  closers.push(() => gateway.close());
  return { endpoint: gateway.endpoint, core };
}

/** A DEALER with an identity, as the PHP and Python clients open one. */
function dealer(endpoint: string, identity: string): Dealer {
  const socket = new Dealer({ routingId: identity, linger: 0, receiveTimeout: 10_000 });
  socket.connect(endpoint);
  closers.push(() => socket.close());
  return socket;
}

/** The cover the PHP client sends for a set request: `{"type":2,"data":base64(request),"ttl":N}`. */
function phpSetBody(id: number, ttl = 30000): string {
  return JSON.stringify(cover(encodeSetRequest(taskSpec({ id: String(id), command: "uname -a" })), true, ttl));
}

async function exchange(socket: Dealer, frames: string[]): Promise<{ id: string; items: LegacyResultItem[] }> {
  await socket.send(frames);
  const [id, body] = await socket.receive();
  const text = body!.toString();
  return { id: id!.toString(), items: (text.startsWith("[") ? JSON.parse(text) : uncover(text)) as LegacyResultItem[] };
}

const submitted = (core: ReturnType<typeof managerCore>): TaskSpec[] => core.calls.flatMap((call) => (call.method === "submit" ? [call.spec] : []));

describe("a legacy route framed as the original clients frame it", () => {
  it("fans a role 0 route out as one item per node, each naming its node, the down one an error item", async () => {
    const { endpoint, core } = await zmqManager();
    // hce_message_send wraps route, then body, then id: the frames are [id, body, route].
    const client = dealer(endpoint, "php-client-route");
    const reply = await exchange(client, ["msg-1", phpSetBody(5001, 4000), '{"role":0,"nodes":["n1","n2","n3"]}']);
    expect(reply.id).toBe("msg-1");
    expect(submitted(core)[0]!.placement).toEqual({ mode: "all", nodes: ["n1", "n2", "n3"], gatherTimeoutMs: 4000 });
    expect(reply.items.map((item) => [item.node, item.host, item.port, item.id, item.state, item.error_code])).toEqual([
      ["n1", "10.0.0.1", 9001, 5001, 0, 0],
      ["n2", "10.0.0.2", 9002, 5001, 0, 0],
      ["n3", "", 0, 5001, 6, ErrorCode.InternalFo],
    ]);
    expect(Buffer.from(reply.items[1]!.stdout, "base64").toString()).toBe("Linux n2\n");
    expect(reply.items[2]!.error_message).toBe("node n3 is unreachable");
  });

  it("places a role 5 route on the least loaded node, answered with that node's identity", async () => {
    const { endpoint, core } = await zmqManager();
    const client = dealer(endpoint, "php-client-balanced");
    const route = '{"role":5,"nodes":[],"alg":-1,"alg_weight":"1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0","limits":"0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0"}';
    const reply = await exchange(client, ["msg-2", phpSetBody(5002), route]);
    expect(submitted(core)[0]!.placement).toEqual({ mode: "balanced", weights: { cpu: 1, iowait: 0, vram: 0, rram: 0, disk: 0, processes: 0, threads: 0, loadavg: 0 }, gatherTimeoutMs: 30000 });
    // By cpu alone n1 (40) beats n2 (60).
    expect(reply.items).toMatchObject([{ id: 5002, node: "n1", host: "10.0.0.1", port: 9001, state: 0, error_code: 0 }]);
  });

  it("answers a route whose limits every node exceeds with state 6 and error 5002", async () => {
    const { endpoint } = await zmqManager();
    const client = dealer(endpoint, "php-client-limits");
    const reply = await exchange(client, ["msg-3", phpSetBody(5003), '{"role":5,"nodes":[],"alg":0,"alg_weight":"1.0,1.0,1.0,1.0,1.0,1.0,1.0,1.0","limits":"1.0,1.0,1.0,1.0,1.0,1.0,1.0,1.0"}']);
    expect(reply.items).toHaveLength(1);
    expect(reply.items[0]).toMatchObject({ id: 5003, state: 6, error_code: ErrorCode.LimitsOnEveryNode });
    expect(reply.items[0]!.error_message).toMatch(/^resource limits exceeded on every candidate node/);
  });

  it("answers an unknown role with error 5001 and a selection of unknown nodes with 5000", async () => {
    const { endpoint } = await zmqManager();
    const client = dealer(endpoint, "php-client-roles");
    const unknownRole = await exchange(client, ["msg-4", phpSetBody(5004), '{"role":3,"nodes":["n1"]}']);
    expect(unknownRole.items).toMatchObject([{ id: 5004, state: 6, error_code: ErrorCode.NodeModeNotSupported }]);
    expect(unknownRole.items[0]!.error_message).toMatch(/^node mode not supported: legacy route role 3/);
    const noNode = await exchange(client, ["msg-5", phpSetBody(5005), '{"role":1,"nodes":["n013_data"]}']);
    expect(noNode.items).toMatchObject([{ id: 5005, state: 6, error_code: ErrorCode.NoTargetNode }]);
    expect(noNode.items[0]!.error_message).toBe("no target node available: no node matches nodes n013_data; unknown: n013_data");
  });

  it("answers a route frame that is not JSON with error 1 and never submits", async () => {
    const { endpoint, core } = await zmqManager();
    const client = dealer(endpoint, "php-client-bad-route");
    const reply = await exchange(client, ["msg-6", phpSetBody(5006), "{role:0"]);
    expect(reply.items).toMatchObject([{ id: 5006, state: 6, error_code: ErrorCode.Parse, error_message: "the route is not valid JSON" }]);
    expect(core.calls).toEqual([]);
  });

  it("reads the Python client's route, with the task_type it adds", async () => {
    const { endpoint, core } = await zmqManager();
    const client = dealer(endpoint, "py-client-route");
    // Connection.send appends json.dumps(route) with task_type set, after [id, body].
    const reply = await exchange(client, ["py-1", JSON.stringify(encodeSetRequest(taskSpec({ id: "6001", command: "true" }))), '{"role": 1, "task_type": 1}']);
    expect(submitted(core)[0]!.placement).toEqual({ mode: "round-robin" });
    expect(reply.items).toMatchObject([{ id: 6001, node: "n1", host: "10.0.0.1" }]);
  });

  it("leaves a check request's route alone: a task is placed once, later calls go by id", async () => {
    const { endpoint, core } = await zmqManager();
    const client = dealer(endpoint, "php-client-check");
    const reply = await exchange(client, ["msg-7", JSON.stringify(legacyRequest(1, 5001, { type: 1 })), "{role:0"]);
    expect(reply.items).toMatchObject([{ id: 5001, state: 0, error_code: 0 }]);
    expect(core.calls).toMatchObject([{ method: "check", ref: "5001" }]);
  });
});

describe("a legacy route in the HTTP body", () => {
  async function httpManager(): Promise<{ url: string; core: ReturnType<typeof managerCore> }> {
    const core = managerCore();
    const handler: LegacyHandler = createLegacyHandler({ core, identity: testIdentity });
    const server = http.createServer((req, res) => void handleLegacyHttp(handler, req, res, { maxBodyBytes: 1 << 20 }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    closers.push(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/drce`, core };
  }

  it("reads `route` from the cover, and answers the fan-out in the cover", async () => {
    const { url, core } = await httpManager();
    const body = { ...cover(encodeSetRequest(taskSpec({ id: "7001", command: "uname -a" })), true, 2500), route: { role: 0, nodes: ["n2", "n3"] } };
    const res = await fetch(url, { method: "POST", body: JSON.stringify(body) });
    expect(res.status).toBe(200);
    const outer = (await res.json()) as { type: number; ttl: number };
    expect(outer).toMatchObject({ type: 2, ttl: 2500 });
    expect(submitted(core)[0]!.placement).toEqual({ mode: "all", nodes: ["n2", "n3"], gatherTimeoutMs: 2500 });
    expect((uncover(JSON.stringify(outer)) as LegacyResultItem[]).map((item) => [item.node, item.state, item.error_code])).toEqual([
      ["n2", 0, 0],
      ["n3", 6, ErrorCode.InternalFo],
    ]);
  });

  it("reads `route` from a request sent without a cover, as JSON text or as an object", async () => {
    const { url, core } = await httpManager();
    const request = encodeSetRequest(taskSpec({ id: "7002", command: "true" }));
    const asText = await fetch(url, { method: "POST", body: JSON.stringify({ ...request, route: '{"role":4}' }) });
    expect(await asText.json()).toMatchObject([{ id: 7002, state: 0 }]);
    const asObject = await fetch(url, { method: "POST", body: JSON.stringify({ ...request, id: 7003, route: { role: 7 } }) });
    expect(await asObject.json()).toMatchObject([{ id: 7003, state: 6, error_code: ErrorCode.NodeModeNotSupported }]);
    expect(submitted(core).map((spec) => spec.placement?.mode)).toEqual(["random", "legacy route role 7"]);
  });

  it("answers a malformed route field with its precise error", async () => {
    const { url, core } = await httpManager();
    const request = encodeSetRequest(taskSpec({ id: "7004", command: "true" }));
    const res = await fetch(url, { method: "POST", body: JSON.stringify({ ...request, route: { role: 0, nodes: 12 } }) });
    expect(await res.json()).toMatchObject([{ id: 7004, state: 6, error_code: ErrorCode.BadInput, error_message: "route.nodes must be an array of node names" }]);
    expect(core.calls).toEqual([]);
  });
});

describe("a result with an empty list of node items", () => {
  it("is answered as the task itself, never as an empty array", async () => {
    const core = createFakeCore({ check: () => ({ ...viewOf(taskSpec({ id: "8002" }), 0), nodes: [] }) });
    const reply = await createLegacyHandler({ core, identity: testIdentity }).handle(JSON.stringify(legacyRequest(1, 8002, { type: 1 })));
    expect(JSON.parse(reply.body)).toMatchObject([{ id: 8002, state: 0, node: testIdentity.node, host: testIdentity.host }]);
  });
});

describe("a fanned-out result whose node is unreachable with a last known state", () => {
  it("encodes that state with the error that names the node", async () => {
    const last: TaskView = { ...viewOf(taskSpec({ id: "8001" }), 1), origin: address("n1") };
    const core = createFakeCore({
      check: () => ({ ...viewOf(taskSpec({ id: "8001" }), 1), nodes: [{ node: "n1", status: "unreachable", view: last, errorCode: ErrorCode.InternalFo, errorMessage: "node n1 is unreachable; its last known state" }] }),
    });
    const handler = createLegacyHandler({ core, identity: testIdentity });
    const reply = await handler.handle(JSON.stringify(legacyRequest(1, 8001, { type: 1 })));
    expect(JSON.parse(reply.body)).toMatchObject([{ id: 8001, node: "n1", host: "10.0.0.1", port: 9001, state: 1, error_code: ErrorCode.InternalFo, error_message: "node n1 is unreachable; its last known state" }]);
  });
});
