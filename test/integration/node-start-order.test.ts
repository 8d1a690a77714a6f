import { createServer, type Server } from "node:net";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp, ListenError, nodeStartOrder } from "../../src/app.js";
import { defaultConfig, type Config } from "../../src/config.js";
import { startReceiver, type Receiver } from "../helpers/receiver.js";
import { startNode, type TestNode } from "../helpers/node.js";

/** The legacy message asking for a task that does not exist: its reply item names the node. */
const legacyCheck = JSON.stringify({ type: 1, id: 1, data: Buffer.from('{"type":1}').toString("base64") });

describe("a node with every part configured", () => {
  let receiver: Receiver;
  let node: TestNode;

  beforeAll(async () => {
    receiver = await startReceiver();
    node = await startNode({ zmqListen: "127.0.0.1:0", adminZmqListen: "127.0.0.1:0", notifyUrl: receiver.url });
  });

  afterAll(async () => {
    await node.stop();
    await receiver.stop();
  });

  it("started its parts in the named order, the one its close reverses", () => {
    expect(node.app.started).toEqual([...nodeStartOrder]);
  });

  it("reports the admin socket's address in legacy replies, built after binding (no port 0, nothing patched later)", async () => {
    const admin = new URL(node.adminZmqEndpoint.replace(/^tcp:/, "http:"));
    const reply = await fetch(`${node.url}/drce`, { method: "POST", body: legacyCheck, headers: { "content-type": "application/json" } });
    const [item] = (await reply.json()) as { host: string; port: number }[];
    expect(item).toMatchObject({ host: "127.0.0.1", port: Number(admin.port) });
    expect(Number(admin.port)).not.toBe(Number(new URL(node.url).port));
  });
});

describe("a node whose start fails part way", () => {
  let taken: Server;
  let dataDir: string;

  beforeAll(async () => {
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    dataDir = await mkdtemp(join(tmpdir(), "drce-start-"));
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => taken.close(() => resolve()));
    await rm(dataDir, { recursive: true, force: true });
  });

  it("names the listener that failed and closes only the parts that started", async () => {
    const port = (taken.address() as AddressInfo).port;
    const httpPort = await freePort();
    const config: Config = { ...defaultConfig(), listen: `127.0.0.1:${httpPort}`, zmqListen: "", adminZmqListen: `127.0.0.1:${port}`, logLevel: "silent", shutdownGraceMs: 1000, dataDir };
    const app = await createApp(config);
    expect(app.started).toEqual(["store", "runners", "host sampler"]);
    const failure = await app.listen().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ListenError);
    expect((failure as ListenError).flag).toBe("--admin-zmq-listen");
    expect(app.started).toEqual(["store", "runners", "host sampler", "http listener"]);
    await app.close();
    // The HTTP listener bound before the failure is closed with the rest.
    await expect(fetch(`http://127.0.0.1:${httpPort}/drce`, { method: "POST", body: legacyCheck })).rejects.toThrow();
  });
});

/** A loopback port that was free a moment ago. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
