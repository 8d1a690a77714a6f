import { create } from "@bufbuild/protobuf";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * No zombies after 1,000 tasks that double-fork: the node runs in this test process, so its
 * spawner is our child and the tasks are the spawner's children; a zombie is a /proc entry
 * in state Z whose parent is this process or a child of it.
 * The double-forked grandchildren (reparented away from the task) die with their task's
 * group or cgroup and are not left running either.
 */

const concurrency = 32;
// Item 7 asks for 1,000; the --no-cgroups path runs fewer to keep the file well under a minute.
const runs = [
  { cgroups: true, tasks: 1000 },
  { cgroups: false, tasks: 300 },
];

function processes(): { pid: number; state: string; ppid: number; environ: string }[] {
  const out: { pid: number; state: string; ppid: number; environ: string }[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "latin1");
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      let environ = "";
      try {
        environ = readFileSync(`/proc/${name}/environ`, "latin1");
      } catch {
        // a zombie or another user's process
      }
      out.push({ pid: Number(name), state: rest[0] ?? "", ppid: Number(rest[1]), environ });
    } catch {
      // exited while listed
    }
  }
  return out;
}

/** Zombies whose parent is this process or one of its children (the node's spawner starts the tasks). */
const zombiesOfThisProcess = (): number[] => {
  const all = processes();
  const family = new Set([process.pid, ...all.filter((p) => p.ppid === process.pid).map((p) => p.pid)]);
  return all.filter((p) => p.state === "Z" && family.has(p.ppid)).map((p) => p.pid);
};

for (const { cgroups, tasks } of runs) {
  describe(`${tasks} double-forking tasks (${cgroups ? "cgroups where available" : "--no-cgroups"})`, { timeout: 120_000 }, () => {
    let node: TestNode;
    let dataDir = "";
    beforeAll(async () => {
      // The store on tmpfs: this test is about processes, and fsyncs on a busy disk would
      // make it about the disk.
      dataDir = await mkdtemp(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "drce-zombies-"));
      node = await startNode({ cgroups, maxConcurrent: concurrency, dataDir });
    });
    afterAll(async () => {
      await node?.stop();
      await rm(dataDir, { recursive: true, force: true });
    });

    it("leave no zombie children of the node or its spawner and no grandchild running", async () => {
      const prefix = `dfork-${cgroups ? "cg" : "pg"}-${process.pid}-`;
      const started = Date.now();
      let next = 0;
      const failures: string[] = [];
      const worker = async (): Promise<void> => {
        for (let i = next++; i < tasks; i = next++) {
          // Half keep the task's stdout open in the grandchild (bounded drain), half do not.
          const command = i % 2 === 0 ? "(sleep 30 </dev/null >/dev/null 2>&1 &); echo $$" : "(sleep 30 &); echo $$";
          const r = (await node.client.submitTask({ task: create(TaskSpecSchema, { id: `${prefix}${i}`, command }) })).result!;
          if (r.state !== TaskState.FINISHED || r.exitStatus !== 0) failures.push(`${r.id}: state ${r.state}, exit ${r.exitStatus}, ${r.errorMessage}`);
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      const elapsed = Date.now() - started;
      console.log(`${tasks} double-forking tasks (${cgroups ? "cgroups" : "process groups"}): ${elapsed} ms, ${(elapsed / tasks).toFixed(1)} ms per task at concurrency ${concurrency}`);
      expect(failures).toEqual([]);
      // Zombies can exist for an instant between a child's exit and its reaping; none may stay.
      await until(() => zombiesOfThisProcess(), (z) => z.length === 0, 10_000, "no zombie children");
      const grandchildren = processes().filter((p) => p.state !== "Z" && p.environ.includes(`DRCE_TASK_ID=${prefix}`));
      expect(grandchildren.map((p) => p.pid)).toEqual([]);
    });
  });
}
