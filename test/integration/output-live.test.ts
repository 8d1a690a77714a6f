import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stream, TaskMode, TaskState } from "../../gen/drce/v1/task_pb.js";
import { startDrce } from "../helpers/cli.js";
import { until } from "../helpers/node.js";
import { memoryOf, resetPeakMemory, spawnNodeProcess, type NodeProcess } from "../helpers/node-process.js";

/*
 * An attached caller (RunTask, `drce run`) reads its output from the spool as the command
 * writes it. Whatever the caller's pace, it gets every byte in order and then the result; a
 * slow one costs the node a bounded amount of memory (what it has not read waits on disk);
 * a follower that joins late reads what it missed and the rest as it comes.
 */

const MiB = 1024 * 1024;

/** The bytes `seq 1 N` prints, as this machine's seq prints them. */
function seqOutput(count: number): Buffer {
  return execFileSync("seq", ["1", String(count)], { maxBuffer: 256 * MiB });
}

const digest = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");

let node: NodeProcess;

beforeAll(async () => {
  node = await spawnNodeProcess(["--max-output-bytes", "0"]);
  // Warm up: the node's first stream and task are in its baseline.
  for await (const _ of node.rawClient.runTask({ task: { command: "head -c 1048576 /dev/zero" } })) void _;
}, 60_000);

afterAll(async () => {
  await node?.stop();
});

/** Runs a task attached through RunTask and checks the order of what comes: output at contiguous offsets, then one result. */
async function runAttached(command: string): Promise<{ stdout: Buffer; stderr: Buffer; state: TaskState | undefined; stdoutSize: bigint; stderrSize: bigint; afterResult: number }> {
  const parts: Record<"stdout" | "stderr", Buffer[]> = { stdout: [], stderr: [] };
  const received = { stdout: 0, stderr: 0 };
  let result: { state: TaskState; stdoutSize: bigint; stderrSize: bigint } | undefined;
  let afterResult = 0;
  for await (const m of node.rawClient.runTask({ task: { command } })) {
    if (result !== undefined) afterResult++;
    if (m.event.case === "output") {
      const stream = m.event.value.stream === Stream.STDERR ? "stderr" : "stdout";
      // Every chunk starts where the one before ended: nothing missing, nothing twice.
      expect(Number(m.event.value.offset)).toBe(received[stream]);
      received[stream] += m.event.value.data.length;
      parts[stream].push(Buffer.from(m.event.value.data));
    } else if (m.event.case === "gap") {
      throw new Error(`an attached caller got a gap: ${JSON.stringify(m.event.value)}`);
    } else if (m.event.case === "result") {
      result = m.event.value;
    }
  }
  return {
    stdout: Buffer.concat(parts.stdout),
    stderr: Buffer.concat(parts.stderr),
    state: result?.state,
    stdoutSize: result?.stdoutSize ?? -1n,
    stderrSize: result?.stderrSize ?? -1n,
    afterResult,
  };
}

describe("an attached caller", () => {
  it("whose stdout is paused gets every byte in order once it reads again, while the node's memory stays bounded", async () => {
    const count = 17_000_000; // about 133 MiB of seq output
    const expected = seqOutput(count);
    const hash = createHash("sha256");
    let received = 0;
    const before = memoryOf(node.pid);
    resetPeakMemory(node.pid);
    const drce = startDrce(["run", "--", "seq", "1", String(count)], {
      server: node.url,
      timeoutMs: 120_000,
      onStdout: (chunk) => {
        hash.update(chunk);
        received += chunk.length;
      },
    });
    // Read a little, then stop reading drce's stdout until the task has finished on the node.
    await until(() => received, (bytes) => bytes > 0, 30_000, "the first output");
    drce.child.stdout!.pause();
    const { tasks } = await node.client.listTasks({});
    const id = tasks.find((task) => task.command.includes(String(count)))?.id ?? "";
    expect(id).not.toBe("");
    await until(async () => (await node.client.getTask({ task: id })).result?.state, (state) => state === TaskState.FINISHED, 60_000, "the task to finish while drce is paused");
    const growth = memoryOf(node.pid).peak - before.rss;
    console.log(`paused reader: ${(received / MiB).toFixed(1)} of ${(expected.length / MiB).toFixed(1)} MiB read while paused; node RSS +${(growth / MiB).toFixed(1)} MiB at peak`);
    // The whole output was written while the caller took almost none of it: the node held it on disk, not in memory.
    expect(received).toBeLessThan(expected.length / 2);
    expect(growth).toBeLessThan(64 * MiB);
    drce.child.stdout!.resume();
    const outcome = await drce.done;
    expect(outcome.code).toBe(0);
    expect(received).toBe(expected.length);
    expect(hash.digest("hex")).toBe(digest(expected));
  }, 180_000);

  it("gets output of many small writes complete and in order, as it gets output of a few large ones", async () => {
    // One write per line (awk flushes each), on both streams, against 32 MiB in large writes.
    const small = await runAttached(`awk 'BEGIN { for (i = 0; i < 50000; i++) { printf "%d\\n", i; fflush(); printf "e%d\\n", i > "/dev/stderr"; fflush("/dev/stderr") } }'`);
    const lines = Array.from({ length: 50_000 }, (_, i) => `${i}\n`).join("");
    expect(small.state).toBe(TaskState.FINISHED);
    expect(small.stdout.toString()).toBe(lines);
    expect(small.stderr.toString()).toBe(lines.replace(/^/gm, "e").slice(0, -1));
    const large = await runAttached(`head -c ${32 * MiB} /dev/urandom > data && cat data && cat data >&2`);
    expect(large.state).toBe(TaskState.FINISHED);
    expect(large.stdout.length).toBe(32 * MiB);
    expect(digest(large.stderr)).toBe(digest(large.stdout));
  }, 120_000);

  it("gets its result after the last byte of both streams, which the result counts", async () => {
    const run = await runAttached(`seq 1 300000; seq 1 200000 >&2; head -c ${8 * MiB} /dev/zero`);
    expect(run.state).toBe(TaskState.FINISHED);
    expect(run.afterResult).toBe(0);
    expect(run.stdout.length).toBe(seqOutput(300_000).length + 8 * MiB);
    expect(BigInt(run.stdout.length)).toBe(run.stdoutSize);
    expect(run.stderr.equals(seqOutput(200_000))).toBe(true);
    expect(BigInt(run.stderr.length)).toBe(run.stderrSize);
  }, 60_000);
});

describe("a follower that joins a running task late", () => {
  it("gets the whole output from the start, as the attached caller does", async () => {
    const id = "late-follower";
    // Output in two halves with a pause between, so that the follower joins mid-way.
    const command = "seq 1 400000; sleep 2; seq 400001 800000";
    const expected = seqOutput(800_000);
    let attachedBytes = 0;
    const attached = (async () => {
      const parts: Buffer[] = [];
      let state: TaskState | undefined;
      for await (const m of node.rawClient.runTask({ task: { id, command } })) {
        if (m.event.case === "output") {
          attachedBytes += m.event.value.data.length;
          parts.push(Buffer.from(m.event.value.data));
        }
        if (m.event.case === "result") state = m.event.value.state;
      }
      return { stdout: Buffer.concat(parts), state };
    })();
    await until(() => attachedBytes, (bytes) => bytes > 0, 30_000, "the first half");
    const follow = node.rawClient.streamTaskOutput({ task: id, follow: true });
    const parts: Buffer[] = [];
    let offset = 0;
    let state: TaskState | undefined;
    let joinedWhile: TaskState | undefined;
    for await (const m of follow) {
      joinedWhile ??= (await node.client.getTask({ task: id })).result?.state;
      if (m.event.case === "output") {
        expect(Number(m.event.value.offset)).toBe(offset);
        offset += m.event.value.data.length;
        parts.push(Buffer.from(m.event.value.data));
      }
      if (m.event.case === "result") state = m.event.value.state;
    }
    expect(joinedWhile).toBe(TaskState.IN_PROGRESS);
    expect(state).toBe(TaskState.FINISHED);
    expect(Buffer.concat(parts).equals(expected)).toBe(true);
    const run = await attached;
    expect(run.state).toBe(TaskState.FINISHED);
    expect(run.stdout.equals(expected)).toBe(true);
  }, 60_000);

  it("of an async task gets its output complete too", async () => {
    const submitted = await node.client.submitTask({ task: { command: "seq 1 200000; sleep 2; seq 200001 400000", mode: TaskMode.ASYNC } });
    const id = submitted.result?.id ?? "";
    await until(async () => (await node.client.fetchTask({ task: id })).result?.stdout.length ?? 0, (bytes) => bytes > 0, 30_000, "the first half");
    expect((await node.client.getTask({ task: id })).result?.state).toBe(TaskState.IN_PROGRESS);
    const parts: Buffer[] = [];
    for await (const m of node.rawClient.streamTaskOutput({ task: id, follow: true })) if (m.event.case === "output") parts.push(Buffer.from(m.event.value.data));
    expect(Buffer.concat(parts).equals(seqOutput(400_000))).toBe(true);
  }, 60_000);
});
