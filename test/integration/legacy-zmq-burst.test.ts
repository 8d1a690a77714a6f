import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { startNode, type TestNode } from "../helpers/node.js";

const base64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64");

describe("the legacy ZeroMQ gateway of a real node", () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ zmqListen: "127.0.0.1:0" });
  });
  afterAll(async () => {
    await node.stop();
  });

  it("runs 50 sync tasks in flight at once from a DEALER framing [id, body] like the original clients", async () => {
    const dealer = new Dealer({ routingId: "hce-client-1", linger: 0, receiveTimeout: 20_000 });
    dealer.connect(node.zmqEndpoint);
    try {
      const count = 50;
      for (let i = 0; i < count; i++) {
        const data = base64({ session: { tmode: 1 }, command: `echo task-${i}; sleep 0.2` });
        await dealer.send([`req-${i}`, JSON.stringify({ type: 0, id: 70_000 + i, data, subtasks: [] })]);
      }
      const seen = new Map<string, { id: number; state: number; stdout: string }>();
      const started = Date.now();
      for (let i = 0; i < count; i++) {
        const [frameId, body] = await dealer.receive();
        const [item] = JSON.parse(body!.toString()) as { id: number; state: number; stdout: string }[];
        seen.set(frameId!.toString(), item!);
      }
      // Served concurrently: 50 tasks of 0.2 s each take far less than 50 × 0.2 s.
      expect(Date.now() - started).toBeLessThan(8_000);
      expect(seen.size).toBe(count);
      for (let i = 0; i < count; i++) {
        const item = seen.get(`req-${i}`)!;
        expect(item.id).toBe(70_000 + i);
        expect(item.state).toBe(0);
        expect(Buffer.from(item.stdout, "base64").toString()).toBe(`task-${i}\n`);
      }
    } finally {
      dealer.close();
    }
  });

  it("shows a task submitted over ZeroMQ to the Connect API", async () => {
    const dealer = new Dealer({ routingId: "hce-client-2", linger: 0, receiveTimeout: 10_000 });
    dealer.connect(node.zmqEndpoint);
    try {
      await dealer.send(["x", JSON.stringify({ type: 0, id: 71_000, data: base64({ session: { tmode: 2 }, command: "echo from-zmq" }) })]);
      const [, body] = await dealer.receive();
      expect((JSON.parse(body!.toString()) as { error_code: number }[])[0]!.error_code).toBe(0);
      const chunks: string[] = [];
      for await (const message of node.client.streamTaskOutput({ task: "71000", follow: true })) {
        if (message.event.case === "output") chunks.push(Buffer.from(message.event.value.data).toString());
      }
      expect(chunks.join("")).toBe("from-zmq\n");
    } finally {
      dealer.close();
    }
  });
});
