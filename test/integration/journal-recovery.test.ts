import { create } from "@bufbuild/protobuf";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { spawnServe } from "../helpers/child-node.js";
import { trackNodeDebris } from "../helpers/node-debris.js";
import { until } from "../helpers/node.js";
import { liveGroupMembers } from "../helpers/proc.js";

/*
 * The node's journal across crashes, with real node processes: a node SIGKILLed right after
 * it acknowledged submissions, deletions and ends; a restart that dies by the crash hook in
 * the middle of its start-up checkpoint (the task directories synced, no segment retired);
 * and a third start, which must serve exactly what was acknowledged.
 */

const debris = trackNodeDebris();
const { groups } = debris;
afterAll(debris.clear);

describe("the node's journal after crashes", { timeout: 180_000 }, () => {
  it("serves every acknowledged state after a SIGKILL and a crash in the middle of the start-up checkpoint", async () => {
    const dataDir = await debris.dataDir("drce-journal-recovery-");
    const first = debris.track(await spawnServe(["--data-dir", dataDir]));
    const ids = Array.from({ length: 30 }, (_, i) => `done-${i}`);
    await Promise.all(ids.map((id, i) => first.client.submitTask({ task: create(TaskSpecSchema, { id, command: `echo ${i}`, mode: i % 2 === 0 ? TaskMode.SYNC : TaskMode.ASYNC }) })));
    for (const id of ids) await until(() => first.client.getTask({ task: id }), (reply) => reply.result!.state === TaskState.FINISHED, 20_000, `${id} finished`);
    const deleted = ids.filter((_, i) => i % 3 === 0);
    for (const id of deleted) await first.client.deleteTask({ task: id });
    // Running when the node dies: their spawns acknowledged in the API once on disk.
    const running = ["run-0", "run-1", "run-2"];
    for (const id of running) await first.client.submitTask({ task: create(TaskSpecSchema, { id, command: "sleep 300", mode: TaskMode.ASYNC }) });
    for (const id of running) {
      const reply = await until(() => first.client.getTask({ task: id }), (r) => r.result!.state === TaskState.IN_PROGRESS && r.result!.pid > 0, 20_000, `${id} running`);
      groups.add(reply.result!.pid);
    }
    first.proc.kill("SIGKILL");
    expect((await first.exit()).signal).toBe("SIGKILL");

    // The restart replays the journal, syncs the directories, and dies before it retires a segment.
    const journalBefore = (await readdir(join(dataDir, "journal"))).filter((name) => /^\d+\.seg$/.test(name));
    await expect(spawnServe(["--data-dir", dataDir], { DRCE_TEST_CRASH_AT: "compacting" })).rejects.toThrow(/node exited before listening \(code null, signal SIGKILL\)/);
    const journalAfter = (await readdir(join(dataDir, "journal"))).filter((name) => /^\d+\.seg$/.test(name));
    for (const name of journalBefore) expect(journalAfter).toContain(name);

    const third = debris.track(await spawnServe(["--data-dir", dataDir]));
    const listed = new Set((await third.client.listTasks({})).tasks.map((task) => task.id));
    for (const [i, id] of ids.entries()) {
      if (deleted.includes(id)) {
        expect(listed.has(id), `${id} was deleted`).toBe(false);
        continue;
      }
      const fetched = (await third.client.fetchTask({ task: id })).result!;
      expect(fetched.state, id).toBe(TaskState.FINISHED);
      expect(Buffer.from(fetched.stdout).toString(), id).toBe(`${i}\n`);
    }
    for (const id of running) expect((await third.client.getTask({ task: id })).result!.state, id).toBe(TaskState.CRASHED);
    for (const pgid of groups) await until(() => liveGroupMembers(pgid), (members) => members.length === 0, 10_000, "orphans killed by recovery");
    // Every directory left is whole, and the journal's old segments are retired now.
    for (const name of await readdir(join(dataDir, "tasks"))) {
      const status = JSON.parse(await readFile(join(dataDir, "tasks", name, "status.json"), "utf8")) as { id: string };
      expect(status.id).toBe(name);
    }
    const journalNow = (await readdir(join(dataDir, "journal"))).filter((name) => /^\d+\.seg$/.test(name));
    for (const name of journalBefore) expect(journalNow).not.toContain(name);
    third.proc.kill("SIGTERM");
    expect((await third.exit()).code).toBe(0);
  });
});
