import { create } from "@bufbuild/protobuf";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { detectCgroups } from "../../src/executor/cgroup.js";
import { spawnServe, type ChildNode } from "../helpers/child-node.js";
import { until } from "../helpers/node.js";
import { isDead } from "../executor/proc-helpers.js";

/*
 * A node killed with SIGKILL leaves its tasks' cgroups behind; on restart it empties and
 * removes them, so even a setsid grandchild (out of reach of the saved process group) dies.
 */

const support = await detectCgroups();
if (support === undefined) console.warn("cgroup recovery test skipped: no writable cgroup hierarchy (not root, or none mounted)");
const nodes: ChildNode[] = [];
const dirs: string[] = [];
const pids = new Set<number>();

afterAll(async () => {
  for (const node of nodes) node.kill();
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(support === undefined)("recovery with cgroups", { timeout: 120_000 }, () => {
  it("kills a setsid grandchild of a task that ran when the node was killed", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "drce-recover-cg-"));
    dirs.push(dataDir);
    const first = await spawnServe(["--data-dir", dataDir]);
    nodes.push(first);
    const command = "setsid sh -c 'echo $$ > escaped.pid; exec sleep 300' </dev/null >/dev/null 2>&1 & while [ ! -s escaped.pid ]; do sleep 0.01; done; cat escaped.pid; sleep 300";
    await first.client.submitTask({ task: create(TaskSpecSchema, { id: "orphaned", command, mode: TaskMode.ASYNC }) });
    const pidText = await until(
      async () => Buffer.from((await first.client.getTask({ task: "orphaned", extended: true })).result!.stdout).toString().trim(),
      (t) => /^\d+$/.test(t),
      15_000,
      "the grandchild's pid",
    );
    const escaped = Number(pidText);
    pids.add(escaped);
    first.proc.kill("SIGKILL");
    await first.exit();
    expect(await isDead(escaped)).toBe(false);

    const second = await spawnServe(["--data-dir", dataDir]);
    nodes.push(second);
    await until(() => isDead(escaped), (dead) => dead, 10_000, "the setsid grandchild killed on restart");
    expect((await second.client.getTask({ task: "orphaned" })).result!.state).toBe(TaskState.CRASHED);
    expect(second.log()).toMatch(/control groups left by a previous run were emptied and removed/);
    second.proc.kill("SIGTERM");
    expect((await second.exit()).code).toBe(0);
  });
});
