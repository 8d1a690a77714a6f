import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Dealer, Router, type Socket } from "zeromq";
import { secureSocket, zmqPlainUsername } from "../../src/gateway/zmq-auth.js";
import type { LegacyResultItem } from "../../src/gateway/legacy-codec.js";
import { legacyRequest } from "../gateway/legacy-request-encoder.js";
import { startNode, type TestNode } from "../helpers/node.js";
import { taskClient } from "./clients.js";

const token = "zmq-s3cret";
let node: TestNode;
const sockets: Socket[] = [];

beforeAll(async () => {
  node = await startNode({ token, zmqListen: "127.0.0.1:0", adminZmqListen: "127.0.0.1:0" });
});
afterAll(async () => {
  for (const socket of sockets) socket.close();
  await node.stop();
});

/** A DEALER framed like the original PHP and Python clients, with PLAIN credentials or none. */
function dealer(identity: string, password?: string): Dealer {
  const socket = new Dealer({ routingId: identity, linger: 0, receiveTimeout: 15_000 });
  if (password !== undefined) {
    socket.plainUsername = zmqPlainUsername;
    socket.plainPassword = password;
  }
  // The monitor must exist before connect(): a handshake event is not replayed to a late one.
  void socket.events;
  sockets.push(socket);
  return socket;
}

/** The first monitor event of one of the given types (the test's timeout bounds the wait). */
async function firstEvent(socket: Socket, types: string[]): Promise<{ type: string; status?: number }> {
  for await (const event of socket.events) {
    if (!types.includes(event.type)) continue;
    const status = "error" in event ? (event.error as { status?: number } | undefined)?.status : undefined;
    return status === undefined ? { type: event.type } : { type: event.type, status };
  }
  throw new Error(`the socket closed before any ${types.join("/")} event`);
}

describe("the ZeroMQ gateway of a node with a token", () => {
  it("answers a DEALER that presents the token as its PLAIN password", async () => {
    const client = dealer("php-client", token);
    client.connect(node.zmqEndpoint);
    await client.send(["1", JSON.stringify(legacyRequest(0, 7001, { session: { tmode: 1 }, command: "echo zmq-ok" }))]);
    const [id, body] = await client.receive();
    expect(id!.toString()).toBe("1");
    const [item] = JSON.parse(body!.toString()) as LegacyResultItem[];
    expect(item).toMatchObject({ id: 7001, state: 0, exit_status: 0 });
    expect(Buffer.from(item!.stdout, "base64").toString()).toBe("zmq-ok\n");
  });

  it("refuses a wrong token at the handshake: auth error 400, the request never reaches the node", async () => {
    const client = dealer("bad-client", "not-the-token");
    client.connect(node.zmqEndpoint);
    const refused = firstEvent(client, ["handshake:error:auth", "handshake"]);
    await client.send(["1", JSON.stringify(legacyRequest(0, 7002, { session: { tmode: 0 }, command: "echo never" }))]);
    expect(await refused).toEqual({ type: "handshake:error:auth", status: 400 });
    // Nothing was created from the refused peer's message.
    await expect(taskClient(node.url, token).getTask({ task: "7002" })).rejects.toThrow(/not_found/);
  });

  it("guards the admin socket with the same token: the right one gets ECHO back, a wrong one fails the handshake", async () => {
    const good = dealer("admin-client", token);
    good.connect(node.adminZmqEndpoint);
    await good.send(["1", "Admin\tECHO\thello\t"]);
    const [id, body] = await good.receive();
    expect(id!.toString()).toBe("1");
    // The admin socket answers in the original text framing.
    expect(body!.toString()).toBe("OK\thello");

    const bad = dealer("admin-intruder", "not-the-token");
    bad.connect(node.adminZmqEndpoint);
    const refused = firstEvent(bad, ["handshake:error:auth", "handshake"]);
    await bad.send(["1", "Admin\tECHO\thello\t"]);
    expect(await refused).toEqual({ type: "handshake:error:auth", status: 400 });
  });

  it("refuses a token differing only in length", async () => {
    // (libzmq does not let a client set an empty PLAIN password; that case is "no credentials".)
    for (const [name, password] of [["longer", `${token}x`], ["shorter", token.slice(0, -1)]] as const) {
      const client = dealer(name, password);
      client.connect(node.zmqEndpoint);
      const refused = firstEvent(client, ["handshake:error:auth", "handshake", "handshake:error:protocol"]);
      await client.send(["1", JSON.stringify(legacyRequest(1, 7003, { type: 1 }))]);
      expect((await refused).type, name).toBe("handshake:error:auth");
    }
  });

  it("refuses a client without credentials at the handshake (mechanism mismatch)", async () => {
    const client = dealer("anonymous");
    client.connect(node.zmqEndpoint);
    const refused = firstEvent(client, ["handshake:error:protocol", "handshake:error:auth", "handshake"]);
    await client.send(["1", JSON.stringify(legacyRequest(1, 7004, { type: 1 }))]);
    expect((await refused).type).toBe("handshake:error:protocol");
  });
});

describe("secureSocket", () => {
  it("secures any server socket of the node, each with its own token, and keeps refusing after others are released", async () => {
    const a = new Router({ linger: 0 });
    const b = new Router({ linger: 0 });
    const securedA = await secureSocket(a, "token-a");
    const securedB = await secureSocket(b, "token-b");
    expect(securedA.domain).not.toBe(securedB.domain);
    await a.bind("tcp://127.0.0.1:0");
    await b.bind("tcp://127.0.0.1:0");
    a.close();
    await securedA.release();

    // b still refuses a's token and accepts its own.
    const wrong = dealer("to-b-wrong", "token-a");
    wrong.connect(b.lastEndpoint!);
    const refused = firstEvent(wrong, ["handshake:error:auth", "handshake"]);
    await wrong.send(["x"]);
    expect((await refused).type).toBe("handshake:error:auth");

    const right = dealer("to-b-right", "token-b");
    right.connect(b.lastEndpoint!);
    await right.send(["hello"]);
    const [from, payload] = await b.receive();
    expect(from!.toString()).toBe("to-b-right");
    expect(payload!.toString()).toBe("hello");
    b.close();
    await securedB.release();
  });

  it("refuses an empty token", async () => {
    await expect(secureSocket(new Router(), "")).rejects.toThrow(/non-empty/);
  });
});
