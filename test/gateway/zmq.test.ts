import { afterEach, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import type { LegacyResultItem } from "../../src/gateway/legacy-codec.js";
import { createLegacyHandler } from "../../src/gateway/legacy-handler.js";
import { createZmqGateway, type ZmqGateway } from "../../src/gateway/zmq.js";
import { createFakeCore, testIdentity, viewOf, type FakeBehaviour } from "./fake-core.js";
import { legacyRequest } from "./legacy-request-encoder.js";

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
});

async function start(behaviour: FakeBehaviour = {}): Promise<ZmqGateway> {
  const handler = createLegacyHandler({ core: createFakeCore(behaviour), identity: testIdentity });
  const gateway = await createZmqGateway({ handler, endpoint: "tcp://127.0.0.1:0" });
  closers.push(() => gateway.close());
  return gateway;
}

function dealer(endpoint: string, identity: string): Dealer {
  const socket = new Dealer({ routingId: identity, linger: 0, receiveTimeout: 10_000 });
  socket.connect(endpoint);
  closers.push(() => socket.close());
  return socket;
}

async function receive(socket: Dealer): Promise<{ id: string; items: LegacyResultItem[] }> {
  const [id, body] = await socket.receive();
  return { id: id!.toString(), items: JSON.parse(body!.toString()) as LegacyResultItem[] };
}

describe("legacy ZeroMQ endpoint", () => {
  it("binds port 0 and reports the port it got", async () => {
    const gateway = await start();
    expect(gateway.endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    expect(gateway.endpoint).not.toBe("tcp://127.0.0.1:0");
  });

  it("answers a DEALER's [id, body] with [id, response]", async () => {
    const gateway = await start();
    const client = dealer(gateway.endpoint, "php-client-1");
    await client.send(["msg-1", JSON.stringify(legacyRequest(1, 567, { type: 1 }))]);
    const reply = await receive(client);
    expect(reply.id).toBe("msg-1");
    expect(reply.items).toMatchObject([{ id: 567, state: 0, type: 1, node: "test-node" }]);
  });

  it("ignores a route frame after the body", async () => {
    const gateway = await start();
    const client = dealer(gateway.endpoint, "py-client");
    await client.send(["msg-2", JSON.stringify(legacyRequest(1, 1, { type: 1 })), JSON.stringify({ role: 1 })]);
    expect((await receive(client)).items).toMatchObject([{ id: 1 }]);
  });

  it("serves requests concurrently: a slow sync task does not hold up a check", async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const gateway = await start({
      submit: async (spec) => {
        await gate;
        return { view: viewOf(spec, 0), existing: false };
      },
    });
    const client = dealer(gateway.endpoint, "client-c");
    await client.send(["slow", JSON.stringify(legacyRequest(0, 10, { command: "sleep 1" }))]);
    await client.send(["fast", JSON.stringify(legacyRequest(1, 11, { type: 1 }))]);
    const first = await receive(client);
    expect(first.id).toBe("fast");
    release();
    const second = await receive(client);
    expect(second).toMatchObject({ id: "slow", items: [{ id: 10, state: 0 }] });
  });

  it("routes each reply to its own client", async () => {
    const gateway = await start();
    const a = dealer(gateway.endpoint, "client-a");
    const b = dealer(gateway.endpoint, "client-b");
    await a.send(["1", JSON.stringify(legacyRequest(1, 100, { type: 1 }))]);
    await b.send(["1", JSON.stringify(legacyRequest(1, 200, { type: 1 }))]);
    expect((await receive(a)).items[0]!.id).toBe(100);
    expect((await receive(b)).items[0]!.id).toBe(200);
  });

  it("answers many requests in flight at once", async () => {
    const gateway = await start();
    const client = dealer(gateway.endpoint, "burst");
    const n = 200;
    for (let i = 0; i < n; i++) await client.send([String(i), JSON.stringify(legacyRequest(1, i, { type: 1 }))]);
    const ids = new Set<string>();
    for (let i = 0; i < n; i++) {
      const reply = await receive(client);
      expect(reply.items[0]!.id).toBe(Number(reply.id));
      ids.add(reply.id);
    }
    expect(ids.size).toBe(n);
  });

  it("answers a malformed body with an error item", async () => {
    const gateway = await start();
    const client = dealer(gateway.endpoint, "bad");
    await client.send(["m", "{not json"]);
    expect((await receive(client)).items).toMatchObject([{ error_code: 1, state: 6 }]);
  });

  it("answers a message without an id frame with an error item, and keeps serving", async () => {
    const gateway = await start();
    const client = dealer(gateway.endpoint, "one-frame");
    await client.send(JSON.stringify(legacyRequest(1, 1, { type: 1 })));
    const [, body] = await client.receive();
    expect(JSON.parse(body!.toString())).toMatchObject([{ error_code: 1, error_message: "expected the frames [id, body]" }]);
    await client.send(["next", JSON.stringify(legacyRequest(1, 2, { type: 1 }))]);
    expect((await receive(client)).items[0]!.id).toBe(2);
  });

  it("closes while a request is in flight, aborting its wait", async () => {
    let seen: AbortSignal | undefined;
    const handler = createLegacyHandler({
      core: createFakeCore({
        submit: (_spec, signal) => {
          seen = signal;
          return new Promise((_resolve, reject) => signal?.addEventListener("abort", () => reject(new Error("aborted"))));
        },
      }),
      identity: testIdentity,
    });
    const gateway = await createZmqGateway({ handler, endpoint: "tcp://127.0.0.1:0" });
    const client = dealer(gateway.endpoint, "closing");
    await client.send(["s", JSON.stringify(legacyRequest(0, 1, { command: "sleep 100" }))]);
    const deadline = Date.now() + 5000;
    while (seen === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await gateway.close();
    expect(seen?.aborted).toBe(true);
    await gateway.close();
  });

  it("refuses an endpoint that is not a zeromq address", async () => {
    const handler = createLegacyHandler({ core: createFakeCore(), identity: testIdentity });
    await expect(createZmqGateway({ handler, endpoint: "127.0.0.1:5557" })).rejects.toThrow(TypeError);
  });
});
