import { create } from "@bufbuild/protobuf";
import { afterAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { spawnServe } from "../helpers/child-node.js";
import { trackNodeDebris } from "../helpers/node-debris.js";
import { until } from "../helpers/node.js";

/*
 * Acceptance comes first, with real node processes: async submissions to a node whose one
 * slot is held and whose queue is long are answered while the queued tasks wait, and every
 * one of them was durable at its reply (a SIGKILL right after the last reply loses none).
 */

const debris = trackNodeDebris();
const { groups } = debris;
afterAll(debris.clear);

describe("async submissions to a node with a long queue", { timeout: 120_000 }, () => {
  it("are answered while queued tasks wait, and each is durable at its reply", async () => {
    const dataDir = await debris.dataDir("drce-accept-first-");
    const first = debris.track(await spawnServe(["--data-dir", dataDir, "--max-concurrent", "1"]));
    await first.client.submitTask({ task: create(TaskSpecSchema, { id: "holder", command: "sleep 300", mode: TaskMode.ASYNC }) });
    const holder = await until(() => first.client.getTask({ task: "holder" }), (r) => r.result!.state === TaskState.IN_PROGRESS && r.result!.pid > 0, 20_000, "the holder running");
    groups.add(holder.result!.pid);

    // 60 submissions, 8 in flight: every reply says the task waits (new or queued), none ran.
    const ids = Array.from({ length: 60 }, (_, i) => `queued-${i}`);
    const replies: TaskState[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = next++; i < ids.length; i = next++) {
          const reply = await first.client.submitTask({ task: create(TaskSpecSchema, { id: ids[i]!, command: "true", mode: TaskMode.ASYNC }) });
          replies.push(reply.result!.state);
        }
      }),
    );
    // The node dies right after the last reply: every acknowledged task must come back.
    first.proc.kill("SIGKILL");
    expect((await first.exit()).signal).toBe("SIGKILL");
    expect(replies).toHaveLength(ids.length);
    for (const state of replies) expect([TaskState.NEW, TaskState.QUEUED]).toContain(state);

    const second = debris.track(await spawnServe(["--data-dir", dataDir]));
    for (const id of ids) {
      const reply = await second.client.getTask({ task: id });
      expect(reply.result!.id).toBe(id);
      expect(reply.result!.state).not.toBe(TaskState.NOT_FOUND);
    }
    second.kill();
  });

  it("starts queued tasks while submissions keep coming", async () => {
    const dataDir = await debris.dataDir("drce-accept-first-");
    const node = debris.track(await spawnServe(["--data-dir", dataDir, "--max-concurrent", "1"]));
    // The one slot is held for a second; the early task queues behind it.
    await node.client.submitTask({ task: create(TaskSpecSchema, { id: "holder", command: "sleep 1", mode: TaskMode.ASYNC }) });
    await node.client.submitTask({ task: create(TaskSpecSchema, { id: "early", command: "true", mode: TaskMode.ASYNC }) });
    // A stream of submissions, 8 in flight, that goes on until the first task is final: the
    // stream never pausing, the bound on holding starts back is what lets it run.
    let earlyDone = false;
    let submitted = 0;
    const stream = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (!earlyDone && submitted < 5_000) {
          submitted++;
          await node.client.submitTask({ task: create(TaskSpecSchema, { command: "true", mode: TaskMode.ASYNC }) });
        }
      }),
    );
    await until(() => node.client.getTask({ task: "early" }), (r) => r.result!.state === TaskState.FINISHED, 60_000, "the early task finished");
    earlyDone = true;
    await stream;
    expect(submitted).toBeLessThan(5_000);
    node.kill();
  });
});
