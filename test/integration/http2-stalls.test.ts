import { Code } from "@connectrpc/connect";
import http2 from "node:http2";
import { connect as netConnect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { until } from "../helpers/node.js";
import { openFiles, spawnNodeProcess, type NodeProcess } from "../helpers/node-process.js";

/*
 * The fault as it was seen from outside: hundreds of stalled HTTP/2 clients (a cut-short
 * preface, a session left idle, a request body that never ends) against a real node.
 * Without bounds each held a descriptor forever, and 600 of them made the node fail every
 * client with EMFILE. With them, the node never holds more than its connection cap, lets
 * every stalled client go within its bounds, and serves as before.
 */

const perKind = 200;
const maxConnections = 300;
let node: NodeProcess;
const sockets: Socket[] = [];
const sessions: http2.ClientHttp2Session[] = [];

beforeAll(async () => {
  node = await spawnNodeProcess(["--headers-timeout-ms", "1000", "--request-timeout-ms", "2000", "--idle-timeout-ms", "2000", "--max-connections", String(maxConnections)]);
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  for (const session of sessions) session.destroy();
  await node?.stop();
});

const openSockets = (): number => openFiles(node.pid).filter((target) => target.startsWith("socket:")).length;

describe("600 stalled HTTP/2 clients against a node", () => {
  it(`hold at most --max-connections descriptors, are all let go within the bounds, and the node serves on`, { timeout: 120_000 }, async () => {
    const baseline = openSockets();
    const closed = new Set<object>();
    const port = Number(new URL(node.url).port);
    // A cut-short preface.
    for (let i = 0; i < perKind; i++) {
      const socket = netConnect(port, "127.0.0.1");
      sockets.push(socket);
      socket.on("error", () => undefined);
      socket.on("close", () => closed.add(socket));
      socket.resume();
      socket.write("PRI * HTTP/2.0\r\n");
    }
    const path = `/${TaskService.typeName}/${TaskService.method.submitTask.name}`;
    for (let i = 0; i < perKind * 2; i++) {
      const session = http2.connect(node.url);
      sessions.push(session);
      session.on("error", () => undefined);
      session.on("close", () => closed.add(session));
      if (i % 2 === 1) {
        // A request body that never ends.
        const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/proto" });
        stream.on("error", () => undefined);
        stream.resume();
        stream.write(Buffer.from([0x0a]));
      }
      // Otherwise an idle session: connected, settings exchanged, nothing asked.
    }
    let peak = 0;
    await until(
      () => {
        peak = Math.max(peak, openSockets() - baseline);
        return closed.size;
      },
      (count) => count === perKind * 3,
      60_000,
      "every stalled client to be let go",
    );
    expect(peak).toBeLessThanOrEqual(maxConnections + 5);
    await until(() => openSockets(), (count) => count <= baseline + 2, 10_000, "the node's sockets to be back to their number before");
    expect(node.log()).not.toContain("EMFILE");
    // A stream reset for its unfinished body is not a failure of the node.
    expect(node.log()).not.toContain("a Connect handler failed");
    // The node serves as before.
    await expect(node.client.getTask({ task: "no-such-task" })).rejects.toMatchObject({ code: Code.NotFound });
    console.info(`${perKind * 3} stalled HTTP/2 clients: at most ${peak} sockets held at once (cap ${maxConnections})`);
  });
});
