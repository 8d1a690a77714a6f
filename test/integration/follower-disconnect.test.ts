import { create, toBinary } from "@bufbuild/protobuf";
import { statSync } from "node:fs";
import http2 from "node:http2";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { StreamTaskOutputRequestSchema, TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { until } from "../helpers/node.js";
import { memoryOf, openFiles, spawnNodeProcess, type NodeProcess } from "../helpers/node-process.js";

/*
 * Followers of a task's output that go away in the middle of a stream, as when their
 * processes die: each has a spool file open and a flow-control window full of output when
 * its connection is cut. Their files must close when their streams end, not when garbage
 * collection finds the handles (node warns "Closing file descriptor N on garbage
 * collection", DEP0137). The memory their streams held goes back with the next collection.
 */

const MiB = 1024 * 1024;
const followers = 50;
let node: NodeProcess;

beforeAll(async () => {
  node = await spawnNodeProcess(["--max-output-bytes", "0", "--stalled-reader-ms", "0"]);
});
afterAll(async () => {
  await node?.stop();
});

/** Opens a StreamTaskOutput follow on its own connection that reads `readBytes` and then stops reading. */
function follow(task: string, readBytes: number): { session: http2.ClientHttp2Session; received: Promise<void> } {
  const session = http2.connect(node.url);
  session.on("error", () => undefined);
  const stream = session.request({
    ":method": "POST",
    ":path": `/${TaskService.typeName}/${TaskService.method.streamTaskOutput.name}`,
    "content-type": "application/connect+proto",
    "connect-protocol-version": "1",
  });
  stream.on("error", () => undefined);
  const body = toBinary(StreamTaskOutputRequestSchema, create(StreamTaskOutputRequestSchema, { task, follow: true }));
  const envelope = Buffer.alloc(5 + body.length);
  envelope.writeUInt32BE(body.length, 1);
  Buffer.from(body).copy(envelope, 5);
  stream.end(envelope);
  const received = new Promise<void>((resolve) => {
    let bytes = 0;
    stream.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes < readBytes) return;
      // Stop taking data: the node's writes now wait on flow control, as with a dead peer.
      stream.pause();
      resolve();
    });
  });
  return { session, received };
}

const spoolFiles = (task: string): string[] => openFiles(node.pid).filter((target) => target.includes(`/tasks/${task}/std`));

describe("followers that disconnect mid-stream", () => {
  it(`close their spool files when their streams end: ${followers} followers cut off leave no descriptor and no GC warning`, { timeout: 120_000 }, async () => {
    const id = `gone-${Date.now()}`;
    // 64 MiB on each stream, then the task stays alive: the followers follow a running task.
    await node.client.submitTask({ task: create(TaskSpecSchema, { id, command: "head -c 67108864 /dev/zero; head -c 67108864 /dev/zero >&2; sleep 300", mode: TaskMode.ASYNC }) });
    const size = (stream: string): number => statSync(join(node.dataDir, "tasks", id, stream), { throwIfNoEntry: false })?.size ?? 0;
    await until(() => [size("stdout"), size("stderr")], (sizes) => sizes.every((bytes) => bytes === 64 * MiB), 60_000, "the output to be spooled");
    const baseline = memoryOf(node.pid).rss;
    // The task's own spools hold its two files open while it runs.
    const writerFiles = spoolFiles(id).length;
    const open = Array.from({ length: followers }, () => follow(id, 2 * MiB));
    await Promise.all(open.map((f) => f.received));
    // Every follower holds its spool file open while it is stalled.
    expect(spoolFiles(id).length).toBeGreaterThanOrEqual(writerFiles + followers);
    for (const f of open) f.session.destroy();
    const closedAt = Date.now();
    await until(() => spoolFiles(id), (files) => files.length === writerFiles, 5000, "the followers' spool files to be closed");
    const closeMs = Date.now() - closedAt;
    const after = memoryOf(node.pid).rss;
    expect(node.log()).not.toContain("on garbage collection");
    expect(node.log()).not.toContain("DEP0137");
    // The task is untouched by its followers leaving.
    expect((await node.client.getTask({ task: id })).result!.state).toBe(TaskState.IN_PROGRESS);
    await node.client.terminateTask({ task: id });
    console.info(`${followers} followers cut off: spool files closed ${closeMs} ms after; RSS ${Math.round(baseline / MiB)} MiB before, ${Math.round(after / MiB)} MiB after`);
  });
});
