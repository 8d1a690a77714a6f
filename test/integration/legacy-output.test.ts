import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * The legacy protocol carries the whole kept output in its reply, over HTTP and ZeroMQ, and
 * names a stream the node cut: its true size, where the gap is and how many bytes it has.
 */

const MiB = 1024 * 1024;
const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");
/** `seq 1 100000`: 588895 bytes. */
const full = Buffer.from(Array.from({ length: 100000 }, (_, i) => `${i + 1}\n`).join(""));

interface Item {
  id: number;
  state: number;
  error_code: number;
  stdout: string;
  stderr: string;
  stdout_truncated?: boolean;
  stdout_size?: number;
  stdout_gap_offset?: number;
  stdout_gap_bytes?: number;
  stderr_truncated?: boolean;
}

const message = (type: number, id: number, data: object): string => JSON.stringify({ type, id, data: Buffer.from(JSON.stringify(data)).toString("base64") });

async function overHttp(node: TestNode, body: string): Promise<{ items: Item[]; length: number; declared: number }> {
  const res = await fetch(`${node.url}/drce`, { method: "POST", body });
  const bytes = Buffer.from(await res.arrayBuffer());
  return { items: JSON.parse(bytes.toString()) as Item[], length: bytes.length, declared: Number(res.headers.get("content-length")) };
}

async function overZmq(node: TestNode, body: string): Promise<Item[]> {
  const socket = new Dealer({ linger: 0, receiveTimeout: 60_000 });
  socket.connect(node.zmqEndpoint);
  try {
    await socket.send(["1", body]);
    const [, reply] = await socket.receive();
    return JSON.parse(reply!.toString()) as Item[];
  } finally {
    socket.close();
  }
}

describe("a node that keeps 1000 bytes per stream", () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ maxOutputBytes: 1000, zmqListen: "127.0.0.1:0" });
  });
  afterAll(async () => {
    await node?.stop();
  });

  const expectCut = (item: Item): void => {
    expect(item).toMatchObject({ state: 0, error_code: 0, stdout_truncated: true, stdout_size: full.length, stdout_gap_offset: 500, stdout_gap_bytes: full.length - 1000 });
    expect(item.stderr_truncated).toBeUndefined();
    const stdout = Buffer.from(item.stdout, "base64");
    expect(stdout.equals(Buffer.concat([full.subarray(0, 500), full.subarray(full.length - 500)]))).toBe(true);
  };

  it("a sync set over HTTP answers with head and tail and says where the 587895 bytes are missing", async () => {
    const { items, length, declared } = await overHttp(node, message(0, 41, { session: { tmode: 1 }, command: "seq 1 100000" }));
    expectCut(items[0]!);
    expect(declared).toBe(length);
  });

  it("over ZeroMQ the same, and a plain check names the truncation without output", async () => {
    const [set] = await overZmq(node, message(0, 42, { session: { tmode: 1 }, command: "seq 1 100000" }));
    expectCut(set!);
    const [checked] = await overZmq(node, message(1, 42, { type: 0 }));
    expect(checked).toMatchObject({ stdout: "", stdout_truncated: true, stdout_size: full.length });
    expect(checked!.stdout_gap_offset).toBeUndefined();
  });

  it("an output under the cap carries no truncation fields", async () => {
    const { items } = await overHttp(node, message(0, 43, { session: { tmode: 1 }, command: "echo small" }));
    expect(Buffer.from(items[0]!.stdout, "base64").toString()).toBe("small\n");
    expect(Object.keys(items[0]!).filter((key) => key.includes("truncated") || key.includes("gap") || key.endsWith("_size"))).toEqual([]);
  });
});

describe("a node that keeps every byte, with the default 1 MiB inline bound of the typed API", () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ maxOutputBytes: 0, zmqListen: "127.0.0.1:0" });
  });
  afterAll(async () => {
    await node?.stop();
  });

  it("8 MiB of random output arrive whole in legacy fetch replies over HTTP (in its cover too) and ZeroMQ", async () => {
    const command = `head -c ${8 * MiB} /dev/urandom > data.bin && cat data.bin && sha256sum data.bin | cut -d ' ' -f 1 >&2`;
    const { items } = await overHttp(node, message(0, 51, { session: { tmode: 1 }, command }));
    const digest = Buffer.from(items[0]!.stderr, "base64").toString().trim();
    const first = Buffer.from(items[0]!.stdout, "base64");
    expect(first.length).toBe(8 * MiB);
    expect(sha256(first)).toBe(digest);

    const [fetchedZmq] = await overZmq(node, message(3, 51, { type: 0 }));
    expect(sha256(Buffer.from(fetchedZmq!.stdout, "base64"))).toBe(digest);

    // The original clients' cover, data base64: the reply comes in the same cover.
    const covered = JSON.stringify({ type: 2, data: Buffer.from(message(3, 51, { type: 1 })).toString("base64"), ttl: 30 });
    const res = await fetch(`${node.url}/drce`, { method: "POST", body: covered });
    const reply = (await res.json()) as { type: number; ttl: number; data: string };
    expect(reply).toMatchObject({ type: 2, ttl: 30 });
    const [fetched] = JSON.parse(Buffer.from(reply.data, "base64").toString()) as Item[];
    expect(sha256(Buffer.from(fetched!.stdout, "base64"))).toBe(digest);
    // Fetch type 1 deleted the task.
    const [gone] = await overZmq(node, message(1, 51, { type: 0 }));
    expect(gone!.state).toBe(3);
  });
});
