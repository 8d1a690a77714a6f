import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * The first usage sample of a task is taken at its spawn. The node's periodic sampler runs
 * once a minute here, so every figure an extended check shows comes from that first sample:
 * a live task in its first second must never show zero memory or zero threads.
 */

describe("an extended check right after a task started", { timeout: 60_000 }, () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ sampleIntervalMs: 60_000 });
  });
  afterAll(async () => {
    await node?.stop();
  });

  it("reports the live process's memory and threads over Connect, before any periodic sample", async () => {
    const id = "first-sample-connect";
    await node.client.submitTask({ task: create(TaskSpecSchema, { id, command: "sleep 30", mode: TaskMode.ASYNC }) });
    const running = await until(
      () => node.client.getTask({ task: id, extended: true }).then((reply) => reply.result!),
      (result) => result.state === TaskState.IN_PROGRESS,
      10_000,
      "the task in progress",
    );
    // A live `sleep` holds a few hundred KiB resident at least, in one thread.
    expect(running.fields["TASK_RRAM"]).toBeGreaterThan(0);
    expect(running.fields["TASK_THREADS"]).toBeGreaterThanOrEqual(1);
    await node.client.terminateTask({ task: id });
  });

  it("reports them over the legacy protocol too (fields of a type 1 extended check)", async () => {
    const id = 7301;
    const post = async (type: number, data: object): Promise<{ state: number; fields: Record<string, string> | [] }> => {
      const body = JSON.stringify({ type, id, data: Buffer.from(JSON.stringify(data)).toString("base64") });
      const reply = await fetch(`${node.url}/drce`, { method: "POST", body });
      return ((await reply.json()) as { state: number; fields: Record<string, string> | [] }[])[0]!;
    };
    await post(0, { session: { tmode: 2 }, command: "sleep 30" });
    const item = await until(() => post(1, { type: 2 }), (found) => found.state === 1, 10_000, "the legacy task in progress");
    expect(Array.isArray(item.fields)).toBe(false);
    const fields = item.fields as Record<string, string>;
    expect(Number(fields["TASK_RRAM"])).toBeGreaterThan(0);
    expect(Number(fields["TASK_THREADS"])).toBeGreaterThanOrEqual(1);
    await node.client.terminateTask({ task: String(id) });
  });
});
