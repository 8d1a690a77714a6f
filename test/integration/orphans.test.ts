import { create } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { detectCgroups } from "../../src/executor/cgroup.js";
import { spawnServe, type ChildNode } from "../helpers/child-node.js";
import { until } from "../helpers/node.js";

/*
 * A node SIGKILLed in the middle of a burst of spawns: some commands run with their spawn
 * record on disk, some were started by the spawner while the node had not heard of them
 * yet or had not recorded them. After the restart nothing the dead node started may run,
 * with cgroups or without: the spawner kills the groups the node had not recorded when its
 * channel closes, and recovery kills the recorded ones. Survivors are counted in /proc by a
 * variable every task of the test carries.
 */

const support = await detectCgroups();
if (support === undefined) console.warn("orphans with cgroups skipped: no writable cgroup hierarchy (not root, or none mounted)");

/** Kills per mode, and tasks submitted at once before each kill. */
const kills = 5;
const burst = 48;

const nodes: ChildNode[] = [];
const dirs: string[] = [];
const markers: string[] = [];

/** Live processes whose environment holds DRCE_TEST_MARK=marker. */
function marked(marker: string): number[] {
  const needle = Buffer.from(`\0DRCE_TEST_MARK=${marker}\0`);
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "latin1");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (state === "Z" || state === "X") continue;
      const environ = readFileSync(`/proc/${name}/environ`);
      if (Buffer.concat([Buffer.from([0]), environ, Buffer.from([0])]).includes(needle)) found.push(Number(name));
    } catch {
      // exited while we looked
    }
  }
  return found;
}

afterAll(async () => {
  for (const node of nodes) node.kill();
  // Whatever a failed run left is killed here, so it cannot disturb other tests.
  for (const marker of markers) {
    for (const pid of marked(marker)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const modes = [
  { name: "without cgroups", flags: ["--no-cgroups"], skip: false },
  { name: "with cgroups", flags: [], skip: support === undefined },
];

for (const mode of modes) {
  describe.skipIf(mode.skip)(`a node killed during spawn bursts, ${mode.name}`, { timeout: 300_000 }, () => {
    it(`leaves no process of its tasks running after ${kills} SIGKILLs and restarts`, async () => {
      const dataDir = await mkdtemp(join(tmpdir(), "drce-orphans-"));
      dirs.push(dataDir);
      const marker = randomBytes(8).toString("hex");
      markers.push(marker);
      const start = async (): Promise<ChildNode> => {
        const node = await spawnServe(["--data-dir", dataDir, "--max-concurrent", "64", "--shutdown-grace", "2000", ...mode.flags]);
        nodes.push(node);
        return node;
      };
      let node = await start();
      const aliveAtKill: number[] = [];
      const survivors: number[] = [];
      for (let round = 0; round < kills; round++) {
        // Two processes a task (the shell and its sleep), as a real command has.
        const submissions = Array.from({ length: burst }, (_, i) =>
          node.client
            .submitTask({ task: create(TaskSpecSchema, { id: `r${round}-t${i}`, command: "sleep 300; :", mode: TaskMode.ASYNC, env: { DRCE_TEST_MARK: marker } }) })
            .catch(() => undefined), // a submission the kill cut short was never acknowledged
        );
        // Killed while the burst is being spawned: a few tasks run, the rest are in flight.
        await until(() => marked(marker).length, (count) => count >= 8, 30_000, "the first tasks of the burst running");
        node.proc.kill("SIGKILL");
        await node.exit();
        aliveAtKill.push(marked(marker).length);
        await Promise.all(submissions);

        node = await start();
        // The dead node's spawner kills what was not recorded as it goes, and recovery what was.
        const left = await until(() => marked(marker), (pids) => pids.length === 0, 10_000, `no process of round ${round} left`).catch(() => marked(marker));
        survivors.push(left.length);
        expect(left, `round ${round}: processes of the dead node's tasks still running`).toEqual([]);
        // Every task the node acknowledged is known after the restart, and none shows as running.
        const { tasks } = await node.client.listTasks({});
        const unfinished = tasks.filter((task) => [TaskState.IN_PROGRESS, TaskState.NEW, TaskState.QUEUED].includes(task.state));
        expect(unfinished.map((task) => task.id)).toEqual([]);
      }
      console.info(`orphans ${mode.name}: ${kills} kills of ${burst}-task bursts; marked processes alive at each kill ${aliveAtKill.join(", ")}; survivors after each restart ${survivors.join(", ")}`);
      node.proc.kill("SIGTERM");
      expect((await node.exit()).code).toBe(0);
    });
  });
}
