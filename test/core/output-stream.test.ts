import { afterEach, describe, expect, it } from "vitest";
import type { OutputEvent, RunEvent } from "../../src/core/api.js";
import { TaskMode, TaskState } from "../../src/domain/states.js";
import { taskSpec, type TaskSpec } from "../../src/domain/task.js";
import { scriptedCore, until, type ScriptedCore } from "./core-fixture.js";

let node: ScriptedCore;
afterEach(async () => {
  await node.close();
});

const sync = (fields: Partial<TaskSpec>): TaskSpec => taskSpec({ command: "done", mode: TaskMode.Sync, ...fields });
const async_ = (fields: Partial<TaskSpec>): TaskSpec => taskSpec({ command: "done", mode: TaskMode.Async, ...fields });
const never = new AbortController().signal;

/** Every event of a stream, with the output of each stream joined. */
async function drain(events: AsyncIterable<OutputEvent | RunEvent>): Promise<{ kinds: string[]; stdout: string; stderr: string; offsets: number[]; gaps: { offset: number; bytes: number }[] }> {
  const kinds: string[] = [];
  const text = { stdout: "", stderr: "" };
  const offsets: number[] = [];
  const gaps: { offset: number; bytes: number }[] = [];
  for await (const event of events) {
    kinds.push(event.kind);
    if (event.kind === "output") {
      text[event.chunk.stream] += Buffer.from(event.chunk.data).toString();
      if (event.chunk.stream === "stdout") offsets.push(event.chunk.offset);
    }
    if (event.kind === "gap") gaps.push({ offset: event.gap.offset, bytes: event.gap.bytes });
  }
  return { kinds, ...text, offsets, gaps };
}

describe("streaming a task's output from the core", () => {
  it("gives a final task's output from the offsets asked for, without a result when not following", async () => {
    node = await scriptedCore();
    node.runner.define("talk", [{ out: "stdout", data: "0123456789" }, { out: "stderr", data: "abcdef" }, { exit: 0 }]);
    await node.core.submit(sync({ id: "t", command: "talk" }));
    const read = await drain(node.core.streamOutput("t", { stdout: 4, stderr: 2 }, false, never));
    expect(read.stdout).toBe("456789");
    expect(read.stderr).toBe("cdef");
    expect(read.offsets).toEqual([4]);
    expect(read.kinds).not.toContain("result");
  });

  it("follows a running task until it ends, then gives its result", async () => {
    node = await scriptedCore();
    node.runner.define("slow", [{ out: "stdout", data: "first\n" }, { gate: "more" }, { out: "stdout", data: "second\n" }, { exit: 0 }]);
    await node.core.submit(async_({ id: "t", command: "slow" }));
    await until(() => node.runner.handed("t"), "the process running");
    const reading = drain(node.core.streamOutput("t", { stdout: 0, stderr: 0 }, true, never));
    node.runner.open("more");
    const read = await reading;
    expect(read.stdout).toBe("first\nsecond\n");
    expect(read.kinds.at(-1)).toBe("result");
  });

  it("says where the kept copy of a capped stream was cut, and gives the tail after the gap", async () => {
    node = await scriptedCore({ maxOutputBytes: 10 });
    node.runner.define("loud", [{ out: "stdout", data: "0123456789ABCDEFGHIJ" }, { exit: 0 }]);
    const { view } = await node.core.submit(sync({ id: "t", command: "loud" }));
    expect(view.status).toMatchObject({ stdoutSize: 20, stdoutTruncated: true });
    expect(view.stdoutGap).toEqual({ offset: 5, bytes: 10 });
    const read = await drain(node.core.streamOutput("t", { stdout: 0, stderr: 0 }, false, never));
    expect(read.stdout).toBe("01234FGHIJ");
    expect(read.gaps).toEqual([{ offset: 5, bytes: 10 }]);
    expect(read.offsets).toEqual([0, 15]);
  });

  it("starts past a gap at the byte asked for", async () => {
    node = await scriptedCore({ maxOutputBytes: 10 });
    node.runner.define("loud", [{ out: "stdout", data: "0123456789ABCDEFGHIJ" }, { exit: 0 }]);
    await node.core.submit(sync({ id: "t", command: "loud" }));
    const read = await drain(node.core.streamOutput("t", { stdout: 17, stderr: 0 }, false, never));
    expect(read.stdout).toBe("HIJ");
    expect(read.gaps).toEqual([]);
  });

  it("gives an attached run every byte, past the cap too, between accepted and its result", async () => {
    node = await scriptedCore({ maxOutputBytes: 10 });
    node.runner.define("loud", [{ out: "stdout", data: "0123456789" }, { out: "stdout", data: "ABCDEFGHIJ" }, { exit: 0 }]);
    const read = await drain(node.core.run(taskSpec({ id: "t", command: "loud" }), never));
    expect(read.kinds[0]).toBe("accepted");
    expect(read.kinds.at(-1)).toBe("result");
    expect(read.stdout).toBe("0123456789ABCDEFGHIJ");
    expect(read.gaps).toEqual([]);
  });

  it("terminates an attached run's task when its caller goes away", async () => {
    node = await scriptedCore();
    node.runner.define("hang", [{ out: "stdout", data: "up\n" }, { hang: true }]);
    const caller = new AbortController();
    for await (const event of node.core.run(taskSpec({ id: "t", command: "hang" }), caller.signal)) {
      if (event.kind === "output") break;
    }
    await until(() => node.events.some((event) => event.status.id === "t" && event.status.state === TaskState.Terminated), "the task terminated");
  });

  it("ends a follower whose signal aborts, and leaves the task running", async () => {
    node = await scriptedCore();
    node.runner.define("hang", [{ out: "stdout", data: "up\n" }, { hang: true }]);
    await node.core.submit(async_({ id: "t", command: "hang" }));
    await until(() => node.runner.handed("t"), "the process running");
    const follower = new AbortController();
    const kinds: string[] = [];
    for await (const event of node.core.streamOutput("t", { stdout: 0, stderr: 0 }, true, follower.signal)) {
      kinds.push(event.kind);
      follower.abort();
    }
    expect(kinds).toEqual(["output"]);
    expect((await node.core.check("t", false)).status.state).toBe(TaskState.InProgress);
  });

  it("refuses a stream of an unknown task: NotFound", async () => {
    node = await scriptedCore();
    expect(() => node.core.streamOutput("nobody", { stdout: 0, stderr: 0 }, false, never)).toThrow(expect.objectContaining({ kind: "not-found" }));
  });
});
