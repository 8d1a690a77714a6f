import { afterEach, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import type { LegacyResultItem } from "../../src/gateway/legacy-codec.js";
import { createLegacyHandler } from "../../src/gateway/legacy-handler.js";
import { bindZmqGateway } from "../../src/gateway/zmq.js";
import { createFakeCore, testIdentity } from "./fake-core.js";
import { legacyRequest } from "./legacy-request-encoder.js";

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
});

describe("a ZeroMQ gateway bound before its handler", () => {
  it("keeps a message that arrives before serve in its socket and answers it once served, with an identity built from the bound endpoint", async () => {
    const gateway = await bindZmqGateway({ endpoint: "tcp://127.0.0.1:0" });
    closers.push(() => gateway.close());
    const client = new Dealer({ routingId: "early-client", linger: 0, receiveTimeout: 10_000 });
    client.connect(gateway.endpoint);
    closers.push(() => client.close());
    await client.send(["msg-1", JSON.stringify(legacyRequest(1, 42, { type: 1 }))]);
    const port = Number(gateway.endpoint.split(":").at(-1));
    gateway.serve(createLegacyHandler({ core: createFakeCore(), identity: { ...testIdentity, port } }));
    const [id, body] = await client.receive();
    expect(id?.toString()).toBe("msg-1");
    expect(JSON.parse(body!.toString()) as LegacyResultItem[]).toMatchObject([{ id: 42, port }]);
    expect(() => gateway.serve(createLegacyHandler({ core: createFakeCore(), identity: testIdentity }))).toThrow("serve was already called");
  });

  it("closes without ever serving", async () => {
    const gateway = await bindZmqGateway({ endpoint: "tcp://127.0.0.1:0" });
    await gateway.close();
    // Its port is free again: a second gateway binds it. ZeroMQ releases the port on its own
    // I/O thread after close() resolves, so a busy machine may need a few tries.
    const deadline = Date.now() + 10_000;
    let again: Awaited<ReturnType<typeof bindZmqGateway>>;
    for (;;) {
      try {
        again = await bindZmqGateway({ endpoint: gateway.endpoint });
        break;
      } catch (error) {
        if (!String(error).includes("Address already in use") || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    expect(again.endpoint).toBe(gateway.endpoint);
    await again.close();
  });
});
