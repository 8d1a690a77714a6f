import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stream, TaskState } from "../../gen/drce/v1/task_pb.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * A follower's output is sent in messages of up to 1 MiB: while a stream is being written,
 * a few ready bytes are held back a few milliseconds for more. Held bytes still reach the
 * follower when nothing more comes, and a stream writing a lot does not hold back the
 * other's few bytes.
 */

const MiB = 1024 * 1024;
let node: TestNode;

beforeAll(async () => {
  node = await startNode();
});

afterAll(async () => {
  await node?.stop();
});

describe("output held back for a larger message", () => {
  it("still reaches a follower when the command writes nothing more for a long time", async () => {
    const call = new AbortController();
    let seen = "";
    let stateWhenSeen: TaskState | undefined;
    let id = "";
    try {
      for await (const m of node.client.runTask({ task: { command: "printf early; sleep 60" } }, { signal: call.signal })) {
        if (m.event.case === "accepted") id = m.event.value.id;
        if (m.event.case === "output") {
          seen += Buffer.from(m.event.value.data).toString();
          if (seen === "early") {
            stateWhenSeen = (await node.client.getTask({ task: id })).result?.state;
            break;
          }
        }
      }
    } finally {
      call.abort();
    }
    expect(seen).toBe("early");
    // The bytes came while the command was still running (sleeping), not with its end.
    expect(stateWhenSeen).toBe(TaskState.IN_PROGRESS);
  });

  it("does not wait for a stream that keeps writing: stderr's flood does not delay stdout's few bytes", async () => {
    const call = new AbortController();
    let stderrBytes = 0;
    let stderrBytesWhenStdout: number | undefined;
    try {
      // stdout: 1 byte, then stderr: 64 MiB as fast as it goes, then a long sleep.
      for await (const m of node.client.runTask({ task: { command: `printf x; head -c ${64 * MiB} /dev/zero >&2; sleep 60` } }, { signal: call.signal })) {
        if (m.event.case !== "output") continue;
        if (m.event.value.stream === Stream.STDERR) stderrBytes += m.event.value.data.length;
        else {
          expect(Buffer.from(m.event.value.data).toString()).toBe("x");
          stderrBytesWhenStdout = stderrBytes;
          break;
        }
      }
    } finally {
      call.abort();
    }
    // Held bytes go out within milliseconds; had stdout waited for stderr to pause, it would
    // have come after all 64 MiB.
    expect(stderrBytesWhenStdout).toBeDefined();
    expect(stderrBytesWhenStdout!).toBeLessThan(64 * MiB);
  });
});
