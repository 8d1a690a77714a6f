import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stream, TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * Past --max-output-bytes the node keeps a stream's head and tail: every reader of the kept
 * copy is told where and how much is missing (an OutputGap at offsets of the stream as the
 * command wrote it), while an attached RunTask caller gets every byte. Unary replies carry at
 * most --inline-output-bytes per stream and say when more is kept.
 */

/** `seq 1 100000`: 588895 bytes. */
const full = Buffer.from(Array.from({ length: 100000 }, (_, i) => `${i + 1}\n`).join(""));
const cap = 1000;
const head = 500;
const tailStart = full.length - 500;

let node: TestNode;

beforeAll(async () => {
  node = await startNode({ maxOutputBytes: cap, inlineOutputBytes: 4096 });
});

afterAll(async () => {
  await node?.stop();
});

type Event = { kind: "output"; stream: Stream; offset: number; data: Buffer } | { kind: "gap"; stream: Stream; offset: number; bytes: number } | { kind: "result"; state: TaskState };

async function streamed(request: { task: string; stdoutOffset?: bigint; follow?: boolean }): Promise<Event[]> {
  const events: Event[] = [];
  for await (const m of node.client.streamTaskOutput(request)) {
    const e = m.event;
    if (e.case === "output") events.push({ kind: "output", stream: e.value.stream, offset: Number(e.value.offset), data: Buffer.from(e.value.data) });
    if (e.case === "gap") events.push({ kind: "gap", stream: e.value.stream, offset: Number(e.value.offset), bytes: Number(e.value.bytes) });
    if (e.case === "result") events.push({ kind: "result", state: e.value.state });
  }
  return events;
}

/** Joins a stream's events to text, the gap shown as [gap OFFSET+BYTES]. */
function render(events: Event[], stream: Stream): string {
  return events
    .filter((e) => e.kind !== "result" && e.stream === stream)
    .map((e) => (e.kind === "output" ? e.data.toString() : e.kind === "gap" ? `[gap ${e.offset}+${e.bytes}]` : ""))
    .join("");
}

const seqTask = async (id: string): Promise<void> => {
  const r = (await node.client.submitTask({ task: create(TaskSpecSchema, { id, command: "seq 1 100000" }) })).result!;
  expect(r).toMatchObject({ state: TaskState.FINISHED, stdoutTruncated: true, stdoutSize: BigInt(full.length) });
};

describe("a unary reply of a stream cut past the cap", () => {
  it("says where the gap is in its output: FetchTask and the sync reply carry stdout_gap, GetTask without output does not", async () => {
    const sync = (await node.client.submitTask({ task: create(TaskSpecSchema, { id: "cut-0", command: "seq 1 100000" }) })).result!;
    expect(sync.stdoutGap).toMatchObject({ stream: Stream.STDOUT, offset: BigInt(head), bytes: BigInt(tailStart - head) });
    expect(sync.stderrGap).toBeUndefined();
    const fetched = (await node.client.fetchTask({ task: "cut-0" })).result!;
    expect(fetched.stdoutGap).toMatchObject({ offset: BigInt(head), bytes: BigInt(tailStart - head) });
    expect(Buffer.from(fetched.stdout).subarray(0, head).equals(full.subarray(0, head))).toBe(true);
    expect(Buffer.from(fetched.stdout).subarray(head).equals(full.subarray(tailStart))).toBe(true);
    expect((await node.client.getTask({ task: "cut-0" })).result!.stdoutGap).toBeUndefined();
  });
});

describe("a stream cut past the cap", () => {
  it("StreamTaskOutput sends the head, one gap at offset 500 of 587895 bytes, then the tail at its true offsets", async () => {
    await seqTask("cut-1");
    const events = await streamed({ task: "cut-1" });
    const expected = `${full.subarray(0, head).toString()}[gap ${head}+${tailStart - head}]${full.subarray(tailStart).toString()}`;
    expect(render(events, Stream.STDOUT)).toBe(expected);
    const tailChunk = events.find((e) => e.kind === "output" && e.offset >= tailStart);
    expect(tailChunk).toMatchObject({ offset: tailStart });
  });

  it("a reader resuming inside the gap is told of the rest of it; one resuming in the tail starts there", async () => {
    await seqTask("cut-2");
    expect(render(await streamed({ task: "cut-2", stdoutOffset: 1000n }), Stream.STDOUT)).toBe(`[gap 1000+${tailStart - 1000}]${full.subarray(tailStart).toString()}`);
    const inTail = await streamed({ task: "cut-2", stdoutOffset: BigInt(tailStart + 100) });
    expect(inTail[0]).toMatchObject({ kind: "output", offset: tailStart + 100 });
    expect(render(inTail, Stream.STDOUT)).toBe(full.subarray(tailStart + 100).toString());
    expect(await streamed({ task: "cut-2", stdoutOffset: BigInt(full.length) })).toEqual([]);
  });

  it("a follower of a running task gets the head, then the gap and the tail once the stream is complete", async () => {
    await node.client.submitTask({ task: create(TaskSpecSchema, { id: "cut-3", command: "seq 1 100000; sleep 1", mode: TaskMode.ASYNC }) });
    const events = await streamed({ task: "cut-3", follow: true });
    expect(render(events, Stream.STDOUT)).toBe(`${full.subarray(0, head).toString()}[gap ${head}+${tailStart - head}]${full.subarray(tailStart).toString()}`);
    expect(events.at(-1)).toEqual({ kind: "result", state: TaskState.FINISHED });
  });

  it("RunTask delivers all 588895 bytes, in order, with no gap", async () => {
    const chunks: { offset: number; data: Buffer }[] = [];
    let gaps = 0;
    let result;
    for await (const m of node.client.runTask({ task: { command: "seq 1 100000; seq 1 3 >&2" } })) {
      if (m.event.case === "output" && m.event.value.stream === Stream.STDOUT) chunks.push({ offset: Number(m.event.value.offset), data: Buffer.from(m.event.value.data) });
      if (m.event.case === "gap") gaps++;
      if (m.event.case === "result") result = m.event.value;
    }
    let next = 0;
    for (const chunk of chunks) {
      expect(chunk.offset).toBe(next);
      next += chunk.data.length;
    }
    expect(gaps).toBe(0);
    expect(Buffer.concat(chunks.map((c) => c.data)).equals(full)).toBe(true);
    // The kept copy is cut all the same: the result says so.
    expect(result).toMatchObject({ state: TaskState.FINISHED, stdoutTruncated: true, stdoutSize: BigInt(full.length) });
  });

  it("a RunTask caller that goes away past the head terminates its task; the command's writes do not wait for it", async () => {
    const controller = new AbortController();
    let id = "";
    let received = 0;
    await expect(
      (async () => {
        for await (const m of node.client.runTask({ task: { command: "yes drce" } }, { signal: controller.signal })) {
          if (m.event.case === "accepted") id = m.event.value.id;
          if (m.event.case === "output") received += m.event.value.data.length;
          if (received > 4 * cap) controller.abort();
        }
      })(),
    ).rejects.toThrow();
    expect(id).not.toBe("");
    const r = await until(async () => (await node.client.getTask({ task: id })).result!, (r) => r.state === TaskState.TERMINATED, 15_000, "the run's task to be terminated");
    expect(r.stdoutTruncated).toBe(true);
  });
});

describe("unary replies carry at most --inline-output-bytes per stream", () => {
  it("a cut stream's reply holds its whole kept copy when that fits the bound, without the flag", async () => {
    const sync = (await node.client.submitTask({ task: create(TaskSpecSchema, { id: "inline", command: "head -c 10000 /dev/zero; echo e >&2" }) })).result!;
    // 10000 bytes pass the cap: the 1000 kept fit the 4096 inline.
    expect(sync).toMatchObject({ stdoutTruncated: true, stdoutMoreAvailable: false, stderrMoreAvailable: false });
    expect(sync.stdout.length).toBe(cap);
    expect(Buffer.from(sync.stderr).toString()).toBe("e\n");
  });

  it("an output under the cap but over the inline bound comes in part, with the flag, and the rest by stream", async () => {
    const big = await startNode({ maxOutputBytes: 0, inlineOutputBytes: 4096 });
    try {
      const sync = (await big.client.submitTask({ task: create(TaskSpecSchema, { id: "inline", command: "seq 1 100000" }) })).result!;
      expect(sync).toMatchObject({ stdoutTruncated: false, stdoutMoreAvailable: true, stdoutSize: BigInt(full.length) });
      expect(Buffer.from(sync.stdout).equals(full.subarray(0, 4096))).toBe(true);
      const checked = (await big.client.getTask({ task: "inline", extended: true })).result!;
      expect(checked.stdout.length).toBe(4096);
      expect(checked.stdoutMoreAvailable).toBe(true);
      const fetched = (await big.client.fetchTask({ task: "inline" })).result!;
      expect(Buffer.from(fetched.stdout).equals(full.subarray(0, 4096))).toBe(true);
      expect(fetched.stdoutMoreAvailable).toBe(true);
      const rest: Buffer[] = [];
      for await (const m of big.client.streamTaskOutput({ task: "inline", stdoutOffset: 4096n })) {
        if (m.event.case === "output") rest.push(Buffer.from(m.event.value.data));
        expect(m.event.case).not.toBe("gap");
      }
      expect(Buffer.concat([Buffer.from(fetched.stdout), ...rest]).equals(full)).toBe(true);
      // A plain GetTask carries no output at all.
      const plain = (await big.client.getTask({ task: "inline" })).result!;
      expect(plain).toMatchObject({ stdoutMoreAvailable: false });
      expect(plain.stdout.length).toBe(0);
    } finally {
      await big.stop();
    }
  });
});
