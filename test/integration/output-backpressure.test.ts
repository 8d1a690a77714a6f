import { create, toBinary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { StreamTaskOutputRequestSchema, TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { until } from "../helpers/node.js";
import { memoryOf, openFiles, resetPeakMemory, spawnNodeProcess, type NodeProcess } from "../helpers/node-process.js";

/*
 * A slow reader of a task's output gets backpressure: the node reads the spool file only as
 * fast as the HTTP/2 stream accepts, so its memory does not grow with what the reader has
 * not taken yet. A reader whose stream accepts nothing for --stalled-reader-ms is dropped
 * (RST_STREAM ENHANCE_YOUR_CALM, which Connect reports as ResourceExhausted) while the task
 * goes on. The readers here are raw node:http2 clients that control exactly how fast they read.
 */

const MiB = 1024 * 1024;
const stalledMs = 1500;

/** The Connect streaming request body of StreamTaskOutput (one envelope). */
function followBody(task: string): Buffer {
  const message = toBinary(StreamTaskOutputRequestSchema, create(StreamTaskOutputRequestSchema, { task, follow: true }));
  const envelope = Buffer.alloc(5 + message.length);
  envelope.writeUInt32BE(message.length, 1);
  Buffer.from(message).copy(envelope, 5);
  return envelope;
}

/** A raw HTTP/2 follower of a task's output that reads only when told to. */
interface RawFollower {
  readonly stream: http2.ClientHttp2Stream;
  /** Bytes of response body read so far. */
  received(): number;
  /** Reads what is buffered now, up to `max` bytes. */
  readSome(max: number): void;
  /** Resolves with the RST_STREAM code once the stream closed. */
  readonly closed: Promise<number>;
  close(): void;
}

function rawFollower(url: string, task: string): RawFollower {
  // A small window, as a client that reads slowly would advertise.
  const session = http2.connect(url, { settings: { initialWindowSize: 65_535 } });
  session.on("error", () => undefined);
  const stream = session.request({
    ":method": "POST",
    ":path": `/${TaskService.typeName}/StreamTaskOutput`,
    "content-type": "application/connect+proto",
    "connect-protocol-version": "1",
  });
  stream.on("error", () => undefined);
  stream.pause();
  stream.end(followBody(task));
  let received = 0;
  const closed = new Promise<number>((resolve) => stream.once("close", () => resolve(stream.rstCode ?? 0)));
  return {
    stream,
    received: () => received,
    readSome(max) {
      for (let taken = 0; taken < max; ) {
        const chunk = stream.read() as Buffer | null;
        if (chunk === null) break;
        taken += chunk.length;
        received += chunk.length;
      }
    },
    closed,
    close() {
      stream.close();
      session.close();
    },
  };
}

let node: NodeProcess;

beforeAll(async () => {
  node = await spawnNodeProcess(["--max-output-bytes", "0", "--stalled-reader-ms", String(stalledMs)]);
  // Warm up: the node's first stream and task are in its baseline.
  const r = (await node.client.submitTask({ task: create(TaskSpecSchema, { command: "head -c 4194304 /dev/zero" }) })).result!;
  for await (const _ of node.client.streamTaskOutput({ task: r.id, follow: true })) {
    // drain
  }
  await node.client.deleteTask({ task: r.id });
});

afterAll(async () => {
  await node?.stop();
});

const stateOf = async (task: string): Promise<TaskState> => (await node.client.getTask({ task })).result!.state;

describe("a slow stream reader", { timeout: 120_000 }, () => {
  it("gets backpressure: the node's memory stays bounded while 256 MiB wait on disk for it", async () => {
    const id = "slow-reader";
    await node.client.submitTask({ task: create(TaskSpecSchema, { id, command: `head -c ${256 * MiB} /dev/zero`, mode: TaskMode.ASYNC }) });
    resetPeakMemory(node.pid);
    const before = memoryOf(node.pid);
    const reader = rawFollower(node.url, id);
    try {
      // Read about 64 KiB every 50 ms, well within the stall limit, until the task is done
      // and the reader has seen a few MiB.
      const finished = until(() => stateOf(id), (state) => state === TaskState.FINISHED, 60_000, "the task to finish");
      await until(
        async () => {
          reader.readSome(64 * 1024);
          return { received: reader.received(), state: await stateOf(id) };
        },
        (s) => s.state === TaskState.FINISHED && s.received >= 4 * MiB,
        60_000,
        "the slow reader to have read 4 MiB of a finished task",
      );
      await finished;
      const after = memoryOf(node.pid);
      const growth = after.peak - before.rss;
      console.log(`slow reader: read ${(reader.received() / MiB).toFixed(1)} MiB of 256 MiB; node RSS +${(growth / MiB).toFixed(1)} MiB at peak`);
      // The reader is far behind (256 MiB written, a few read) and still connected.
      expect(reader.received()).toBeLessThan(64 * MiB);
      expect(reader.stream.closed).toBe(false);
      expect(growth).toBeLessThan(64 * MiB);
    } finally {
      reader.close();
    }
  });

  it("that accepts nothing for --stalled-reader-ms is dropped with ENHANCE_YOUR_CALM, and the task goes on", async () => {
    const id = "stalled-reader";
    await node.client.submitTask({
      task: create(TaskSpecSchema, { id, command: `head -c ${64 * MiB} /dev/zero; echo written >&2; sleep 4; echo done >&2`, mode: TaskMode.ASYNC }),
    });
    const reader = rawFollower(node.url, id);
    const dropped = Date.now();
    const code = await reader.closed;
    const stalledFor = Date.now() - dropped;
    reader.close();
    expect(code).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(stalledFor).toBeGreaterThanOrEqual(stalledMs - 100);
    // Dropped while the task still ran; the task finishes on its own with all its output.
    expect(await stateOf(id)).toBe(TaskState.IN_PROGRESS);
    expect(node.log()).toContain("dropped a stream reader that accepted nothing");
    await until(() => stateOf(id), (state) => state === TaskState.FINISHED, 30_000, "the task to finish");
    const r = (await node.client.fetchTask({ task: id })).result!;
    expect(r.exitStatus).toBe(0);
    expect(r.stdoutSize).toBe(BigInt(64 * MiB));
    expect(Buffer.from(r.stderr).toString()).toBe("written\ndone\n");
    // The dropped follower's file handle was closed with its stream. The fetch just answered
    // read the same files, and a handle's close may follow its last read by a thread-pool
    // round trip on a loaded host, so the check waits for none to be left (a leaked handle
    // stays open: the wait then fails at its deadline).
    const left = await until(() => openFiles(node.pid).filter((target) => target.includes(`/tasks/${id}/`)), (files) => files.length === 0, 10_000, "the task's files to be closed");
    expect(left).toEqual([]);
  });

  // Node's HTTP/2 client turns a reset with ENHANCE_YOUR_CALM into a stream error, which
  // connect-node reports as Internal naming the code (gRPC clients report RESOURCE_EXHAUSTED).
  it("a Connect client that stops pulling gets an error naming ENHANCE_YOUR_CALM when it comes back", async () => {
    const id = "stalled-connect";
    await node.client.submitTask({ task: create(TaskSpecSchema, { id, command: `head -c ${64 * MiB} /dev/zero; sleep 3`, mode: TaskMode.ASYNC }) });
    const drops = (): number => node.log().split("dropped a stream reader").length - 1;
    const dropsBefore = drops();
    const error = await (async () => {
      try {
        let first = true;
        for await (const m of node.rawClient.streamTaskOutput({ task: id, follow: true })) {
          if (first && m.event.case === "output") {
            first = false;
            // Stop pulling until the node has given up on this reader.
            await until(drops, (n) => n > dropsBefore, 30_000, "the node to drop the reader");
          }
        }
        return undefined;
      } catch (error) {
        return ConnectError.from(error);
      }
    })();
    expect(error?.message).toContain("ENHANCE_YOUR_CALM");
    await until(() => stateOf(id), (state) => state === TaskState.FINISHED, 30_000, "the task to finish");
  });

  it("RunTask is exempt: an attached caller that stops reading keeps its task, and gets everything when it reads again", async () => {
    const id = "stalled-run";
    let bytes = 0;
    let resultState: TaskState | undefined;
    let paused = false;
    for await (const m of node.rawClient.runTask({ task: { id, command: `head -c ${16 * MiB} /dev/zero; sleep 1` } })) {
      if (m.event.case === "output") {
        bytes += m.event.value.data.length;
        if (!paused) {
          paused = true;
          // Hold the stream well past the stall limit, until the task has finished.
          const since = Date.now();
          await until(async () => ({ state: await stateOf(id), waited: Date.now() - since }), (s) => s.state === TaskState.FINISHED && s.waited > 2 * stalledMs, 30_000, "the task to finish while the caller waits");
        }
      }
      if (m.event.case === "result") resultState = m.event.value.state;
    }
    expect(bytes).toBe(16 * MiB);
    expect(resultState).toBe(TaskState.FINISHED);
  });
});
