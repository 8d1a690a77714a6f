import { create } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { Stream, TaskMode, TaskSpecSchema, TaskState, type TaskResult } from "../../gen/drce/v1/task_pb.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * Binary output survives byte for byte on every way out of the node: 1 MiB of /dev/urandom,
 * written by a task that also writes the sha256 of what it wrote to stderr, is compared with
 * what the Connect API (sync reply, fetch, RunTask, StreamTaskOutput) and the legacy gateway
 * (base64 stdout over HTTP and ZeroMQ) return.
 */

const MiB = 1024 * 1024;
/** Writes 1 MiB of random bytes to stdout and their sha256 (hex) to stderr. */
const command = `head -c ${MiB} /dev/urandom > data.bin && cat data.bin && sha256sum data.bin | cut -d ' ' -f 1 >&2`;
const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");
const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("utf8");

let node: TestNode;

beforeAll(async () => {
  node = await startNode({ zmqListen: "127.0.0.1:0" });
});

afterAll(async () => {
  await node?.stop();
});

/** The output chunks of a stream, checked to be contiguous, joined per stream. */
function joinChunks(chunks: { stream: Stream; offset: bigint; data: Uint8Array }[]): { stdout: Buffer; stderr: Buffer } {
  const parts: Record<number, Buffer[]> = { [Stream.STDOUT]: [], [Stream.STDERR]: [] };
  const next: Record<number, bigint> = { [Stream.STDOUT]: 0n, [Stream.STDERR]: 0n };
  for (const chunk of chunks) {
    expect(chunk.offset).toBe(next[chunk.stream]);
    next[chunk.stream] = chunk.offset + BigInt(chunk.data.length);
    parts[chunk.stream]!.push(Buffer.from(chunk.data));
  }
  return { stdout: Buffer.concat(parts[Stream.STDOUT]!), stderr: Buffer.concat(parts[Stream.STDERR]!) };
}

/** A legacy set request for the command, sync, as the original clients send it. */
function legacySet(id: number): string {
  const data = Buffer.from(JSON.stringify({ session: { tmode: 1 }, command })).toString("base64");
  return JSON.stringify({ type: 0, id, data });
}

/** Checks a legacy reply item: 1 MiB of stdout in base64 whose sha256 the task wrote on stderr. */
function expectLegacyItem(body: string, id: number): void {
  const [item] = JSON.parse(body) as { id: number; state: number; error_code: number; stdout: string; stderr: string }[];
  expect(item).toMatchObject({ id, state: 0, error_code: 0 });
  const stdout = Buffer.from(item!.stdout, "base64");
  expect(stdout.length).toBe(MiB);
  expect(sha256(stdout)).toBe(Buffer.from(item!.stderr, "base64").toString().trim());
}

describe.concurrent("1 MiB of /dev/urandom, byte for byte", () => {
  it("in the sync SubmitTask reply and in FetchTask", async () => {
    const r = (await node.client.submitTask({ task: create(TaskSpecSchema, { command }) })).result!;
    expect(r.state).toBe(TaskState.FINISHED);
    expect(r.stdout.length).toBe(MiB);
    expect(sha256(r.stdout)).toBe(text(r.stderr).trim());
    const fetched = (await node.client.fetchTask({ task: r.id })).result!;
    expect(sha256(fetched.stdout)).toBe(text(r.stderr).trim());
  });

  it("in the output chunks of RunTask", async () => {
    const chunks: { stream: Stream; offset: bigint; data: Uint8Array }[] = [];
    let result: TaskResult | undefined;
    for await (const m of node.client.runTask({ task: { command } })) {
      if (m.event.case === "output") chunks.push(m.event.value);
      if (m.event.case === "result") result = m.event.value;
    }
    expect(result?.state).toBe(TaskState.FINISHED);
    expect(result?.exitStatus).toBe(0);
    const { stdout, stderr } = joinChunks(chunks);
    expect(stdout.length).toBe(MiB);
    expect(sha256(stdout)).toBe(stderr.toString().trim());
  });

  it("in the output chunks of StreamTaskOutput following an async task", async () => {
    const id = `bin-follow-${Date.now()}`;
    await node.client.submitTask({ task: create(TaskSpecSchema, { id, command, mode: TaskMode.ASYNC }) });
    const chunks: { stream: Stream; offset: bigint; data: Uint8Array }[] = [];
    for await (const m of node.client.streamTaskOutput({ task: id, follow: true })) {
      if (m.event.case === "output") chunks.push(m.event.value);
    }
    const { stdout, stderr } = joinChunks(chunks);
    expect(stdout.length).toBe(MiB);
    expect(sha256(stdout)).toBe(stderr.toString().trim());
  });

  it("in the base64 stdout of the legacy HTTP gateway", async () => {
    const id = 81_001;
    const response = await fetch(`${node.url}/drce`, { method: "POST", body: legacySet(id) });
    expect(response.status).toBe(200);
    expectLegacyItem(await response.text(), id);
  });

  it("in the base64 stdout of the legacy ZeroMQ gateway", async () => {
    const dealer = new Dealer({ routingId: "binary-client", linger: 0, receiveTimeout: 20_000 });
    dealer.connect(node.zmqEndpoint);
    try {
      const id = 81_002;
      await dealer.send(["bin", legacySet(id)]);
      const [frameId, body] = await dealer.receive();
      expect(frameId!.toString()).toBe("bin");
      expectLegacyItem(body!.toString(), id);
    } finally {
      dealer.close();
    }
  });
});

/*
 * Several MiB through the Connect streams, live and after the end: the node reads chunks of
 * 1 MiB into two buffers it reuses in turn, so a chunk sent from a buffer already refilled
 * would show here as a wrong checksum.
 */
describe.concurrent("6 MiB of /dev/urandom through the Connect streams, chunk by chunk", () => {
  const big = `head -c ${6 * MiB} /dev/urandom > data.bin && cat data.bin && sha256sum data.bin | cut -d ' ' -f 1 >&2`;

  it("live, in RunTask", async () => {
    const chunks: { stream: Stream; offset: bigint; data: Uint8Array }[] = [];
    for await (const m of node.client.runTask({ task: { command: big } })) {
      if (m.event.case === "output") chunks.push(m.event.value);
    }
    const { stdout, stderr } = joinChunks(chunks);
    expect(stdout.length).toBe(6 * MiB);
    expect(sha256(stdout)).toBe(stderr.toString().trim());
  });

  it("after the end, in StreamTaskOutput, where every chunk is a full MiB", async () => {
    const r = (await node.client.submitTask({ task: create(TaskSpecSchema, { command: big }) })).result!;
    expect(r.state).toBe(TaskState.FINISHED);
    const chunks: { stream: Stream; offset: bigint; data: Uint8Array }[] = [];
    for await (const m of node.client.streamTaskOutput({ task: r.id, follow: false })) {
      if (m.event.case === "output") chunks.push(m.event.value);
    }
    const { stdout, stderr } = joinChunks(chunks);
    expect(chunks.filter((c) => c.stream === Stream.STDOUT).map((c) => c.data.length)).toEqual(Array(6).fill(MiB));
    expect(sha256(stdout)).toBe(stderr.toString().trim());
  });
});
