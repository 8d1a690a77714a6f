import { create } from "@bufbuild/protobuf";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema } from "../../gen/drce/v1/task_pb.js";
import { spawnServe, type ChildNode } from "../helpers/child-node.js";

/*
 * A reader that cancels its response stream (a `drce watch` or `drce logs -f` ended with
 * Ctrl-C) must leave nothing behind that holds a real `drce serve` past its shutdown grace:
 * the node still exits 0 on SIGTERM within --shutdown-grace plus a margin. The stalled-reader
 * rule is left at its default (60 s), so a watch armed by the cancelled stream would show.
 */

const graceMs = 2000;
let node: ChildNode | undefined;
let dataDir: string | undefined;

afterEach(async () => {
  node?.kill();
  node = undefined;
  if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  dataDir = undefined;
});

/** Reads one message of a stream, then cancels the call and waits for the client to let go. */
async function readOneThenCancel(open: (signal: AbortSignal) => AsyncIterable<unknown>): Promise<void> {
  const controller = new AbortController();
  let received = 0;
  try {
    for await (const _message of open(controller.signal)) {
      received++;
      controller.abort();
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error;
  }
  expect(received).toBe(1);
}

describe("shutdown after a reader cancelled its stream", { timeout: 90_000 }, () => {
  const readers: Record<string, (n: ChildNode, signal: AbortSignal) => AsyncIterable<unknown>> = {
    "a WatchTaskEvents watcher": (n, signal) => n.client.watchTaskEvents({ fromStart: true }, { signal }),
    "a StreamTaskOutput follower": (n, signal) => n.client.streamTaskOutput({ task: "talker", follow: true }, { signal }),
  };
  for (const [name, open] of Object.entries(readers)) {
    it(`${name} that cancels does not keep the node up: SIGTERM ends it within the grace`, async () => {
      dataDir = await mkdtemp(join(tmpdir(), "drce-cancel-"));
      node = await spawnServe(["--data-dir", dataDir, "--shutdown-grace", String(graceMs)]);
      const started = node;
      await started.client.submitTask({ task: create(TaskSpecSchema, { id: "talker", command: "echo ready; sleep 300", mode: TaskMode.ASYNC }) });
            await readOneThenCancel((signal) => open(started, signal));
      // The cancel (RST_STREAM) travels on the same HTTP/2 connection ahead of this call, so
      // its reply means the node has read the cancel.
      await started.client.getTask({ task: "talker" });

      const sent = Date.now();
      started.proc.kill("SIGTERM");
      const exit = await started.exit(graceMs + 20_000);
      const elapsed = Date.now() - sent;
      expect(exit).toEqual({ code: 0, signal: null });
      expect(elapsed).toBeLessThan(graceMs + 5000);
    });
  }
});
