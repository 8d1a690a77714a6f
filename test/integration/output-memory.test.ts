import { create } from "@bufbuild/protobuf";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stream, TaskMode, TaskSpecSchema, TaskState, type TaskResult } from "../../gen/drce/v1/task_pb.js";
import { until } from "../helpers/node.js";
import { memoryOf, openFiles, resetPeakMemory, spawnNodeProcess, type NodeProcess } from "../helpers/node-process.js";

/*
 * Output is spooled to disk as it comes: a node's memory does not grow with a task's output,
 * whether the output is kept whole, capped to head + tail, or streamed to a follower as it is
 * written. The node runs in a child process so that its peak RSS (VmHWM, reset before each
 * task) is the node's alone.
 */

const GiB = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;
/** Growth of the node's peak RSS allowed while a task writes 1 GiB. */
const memoryBound = 64 * MiB;

/** Runs one warm-up task so that lazily built parts of the node are in its baseline. */
async function warmUp(node: NodeProcess): Promise<void> {
  const r = (await node.client.submitTask({ task: create(TaskSpecSchema, { command: "head -c 1048576 /dev/zero; echo e >&2" }) })).result!;
  expect(r.exitStatus).toBe(0);
  await node.client.deleteTask({ task: r.id });
}

describe("node memory while a task writes 1 GiB", { timeout: 240_000 }, () => {
  let whole: NodeProcess;
  let capped: NodeProcess;

  beforeAll(async () => {
    // The capped node returns its whole kept copy in FetchTask (no inline bound), which the
    // test reads back to check the head and the tail.
    [whole, capped] = await Promise.all([spawnNodeProcess(["--max-output-bytes", "0"]), spawnNodeProcess(["--max-output-bytes", String(16 * MiB), "--inline-output-bytes", "0"])]);
  });

  afterAll(async () => {
    await Promise.all([whole?.stop(), capped?.stop()]);
  });

  it("stays flat while a follower streams all of it, and the whole output is stored", async () => {
    await warmUp(whole);
    resetPeakMemory(whole.pid);
    const before = memoryOf(whole.pid);
    const id = "gib-follow";
    await whole.client.submitTask({ task: create(TaskSpecSchema, { id, command: `head -c ${GiB} /dev/zero`, mode: TaskMode.ASYNC }) });

    let received = 0;
    let nonZero = 0;
    let result: TaskResult | undefined;
    let firstHalf = 0;
    for await (const m of whole.rawClient.streamTaskOutput({ task: id, follow: true })) {
      if (m.event.case === "output") {
        if (received < GiB / 2 && received + m.event.value.data.length >= GiB / 2) {
          // Flat, not merely bounded: the second half of the output adds nothing to the first's peak.
          firstHalf = memoryOf(whole.pid).peak;
          resetPeakMemory(whole.pid);
        }
        expect(m.event.value.stream).toBe(Stream.STDOUT);
        expect(m.event.value.offset).toBe(BigInt(received));
        received += m.event.value.data.length;
        if (m.event.value.data.some((byte) => byte !== 0)) nonZero++;
      } else if (m.event.case === "result") result = m.event.value;
    }
    const after = memoryOf(whole.pid);
    const growth = Math.max(firstHalf, after.peak) - before.rss;
    console.log(
      `1 GiB followed: node RSS ${(before.rss / MiB).toFixed(1)} MiB before, peak ${(firstHalf / MiB).toFixed(1)} MiB in the first half, ${(after.peak / MiB).toFixed(1)} MiB in the second (+${(growth / MiB).toFixed(1)} MiB)`,
    );

    expect(received).toBe(GiB);
    expect(nonZero).toBe(0);
    expect(result?.state).toBe(TaskState.FINISHED);
    expect(result?.exitStatus).toBe(0);
    expect(result?.stdoutSize).toBe(BigInt(GiB));
    expect(result?.stdoutTruncated).toBe(false);
    expect((await stat(join(whole.dataDir, "tasks", id, "stdout"))).size).toBe(GiB);
    expect(growth).toBeLessThan(memoryBound);
    expect(after.peak - firstHalf).toBeLessThan(16 * MiB);
    // The follower's file handle is closed once the stream ended.
    expect(openFiles(whole.pid).filter((target) => target.includes(`/tasks/${id}/`))).toEqual([]);
    await whole.client.deleteTask({ task: id });
  });

  it("stays flat past --max-output-bytes; the stored files keep head and tail, the result says truncated with the true count", async () => {
    await warmUp(capped);
    resetPeakMemory(capped.pid);
    const before = memoryOf(capped.pid);
    // 1 GiB of zeros on stdout, then numbered lines; 3000000 numbered lines (about 21 MB) on stderr.
    const command = `head -c ${GiB} /dev/zero; seq 1 1000; seq 1 3000000 >&2`;
    await capped.client.submitTask({ task: create(TaskSpecSchema, { id: "gib-capped", command, mode: TaskMode.ASYNC }) });
    await until(async () => (await capped.client.getTask({ task: "gib-capped" })).result!.state, (state) => state === TaskState.FINISHED, 180_000, "the task to finish");
    // Measured before fetching: the reply itself carries 32 MiB of output.
    const after = memoryOf(capped.pid);
    const r = (await capped.client.fetchTask({ task: "gib-capped" })).result!;
    const growth = after.peak - before.rss;
    console.log(`1 GiB capped at 16 MiB: node RSS ${(before.rss / MiB).toFixed(1)} MiB before, peak ${(after.peak / MiB).toFixed(1)} MiB (+${(growth / MiB).toFixed(1)} MiB)`);

    const lines = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => `${i + 1}\n`).join(""));
    const stdoutTail = lines(1000);
    const stderrFull = lines(3_000_000);
    expect(r.state).toBe(TaskState.FINISHED);
    expect(r.exitStatus).toBe(0);
    expect(r.stdoutTruncated).toBe(true);
    expect(r.stdoutSize).toBe(BigInt(GiB + stdoutTail.length));
    expect(r.stderrTruncated).toBe(true);
    expect(r.stderrSize).toBe(BigInt(stderrFull.length));

    // The stored files are exactly the cap: the first 8 MiB and the last 8 MiB.
    const half = 8 * MiB;
    expect((await stat(join(capped.dataDir, "tasks", r.id, "stdout"))).size).toBe(16 * MiB);
    expect((await stat(join(capped.dataDir, "tasks", r.id, "stderr"))).size).toBe(16 * MiB);
    const stdout = Buffer.from(r.stdout);
    expect(stdout.length).toBe(16 * MiB);
    expect(stdout.subarray(0, half).every((byte) => byte === 0)).toBe(true);
    expect(stdout.subarray(16 * MiB - stdoutTail.length).equals(stdoutTail)).toBe(true);
    expect(stdout.subarray(half, 16 * MiB - stdoutTail.length).every((byte) => byte === 0)).toBe(true);
    const stderr = Buffer.from(r.stderr);
    expect(stderr.subarray(0, half).equals(stderrFull.subarray(0, half))).toBe(true);
    expect(stderr.subarray(half).equals(stderrFull.subarray(stderrFull.length - half))).toBe(true);
    expect(growth).toBeLessThan(memoryBound);
  });
});
