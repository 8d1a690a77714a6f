import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createTaskCgroup, detectCgroups, type CgroupSupport, type TaskCgroup } from "../../src/executor/cgroup.js";
import { createGroupUsageSampler, type ProcStat } from "../../src/executor/process-usage.js";
import { isDead, killSpawned, procStat, spawnGroup } from "./proc-helpers.js";

const detected = await detectCgroups();
const unified = (await exists("/sys/fs/cgroup/unified/cgroup.controllers")) ? await detectCgroups("/sys/fs/cgroup/unified") : undefined;

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

if (detected === undefined) {
  console.warn("cgroup tests skipped: no writable cgroup hierarchy under /sys/fs/cgroup (not root, or not mounted)");
}

const groups: TaskCgroup[] = [];
let counter = 0;
const groupName = (): string => `test-${process.pid}-${++counter}`;

afterEach(async () => {
  killSpawned();
  for (const group of groups.splice(0)) await group.remove().catch(() => undefined);
});

/**
 * Starts `sh -c 'read x; setsid sleep 300 & sleep 300'` in the group: the shell is added
 * before it forks (it waits for a line first), so both sleeps are born in the group, one
 * of them in a session of its own. Returns the shell and the two sleeps.
 */
async function startEscapingTree(group: TaskCgroup): Promise<{ shell: number; inGroup: number; escaped: number }> {
  const shell = await spawnGroup("sh", ["-c", "read x; setsid sleep 300 & sleep 300"], "pipe-stdin");
  await group.addPid(shell.pid);
  shell.stdin!.write("go\n");
  // Wait until both children have exec'd sleep, the one after setsid() in its new session.
  const children = async (): Promise<ProcStat[]> => {
    const stats = await Promise.all((await group.pids()).map(procStat));
    return stats.filter((s): s is ProcStat => s !== undefined && s.pid !== shell.pid && s.comm === "sleep");
  };
  await expect.poll(async () => (await children()).map((s) => s.session === shell.pid).sort(), { timeout: 5000 }).toEqual([false, true]);
  const sleeps = await children();
  const escaped = sleeps.find((s) => s.session !== shell.pid)!;
  const inGroup = sleeps.find((s) => s.session === shell.pid)!;
  expect(escaped.pgrp).not.toBe(shell.pid);
  return { shell: shell.pid, inGroup: inGroup.pid, escaped: escaped.pid };
}

function describeSupport(title: string, support: CgroupSupport | undefined): void {
  describe.skipIf(support === undefined)(title, () => {
    it("kills every process of the group, even one that called setsid", async () => {
      const group = await createTaskCgroup(support!, groupName());
      groups.push(group);
      const tree = await startEscapingTree(group);
      await group.killAll();
      expect(await group.pids()).toEqual([]);
      for (const pid of [tree.shell, tree.inGroup, tree.escaped]) {
        await expect.poll(() => isDead(pid), { timeout: 5000 }).toBe(true);
      }
    });

    it("removes its directories, killing what is left, and tolerates a second remove", async () => {
      const group = await createTaskCgroup(support!, groupName());
      groups.push(group);
      const tree = await startEscapingTree(group);
      await group.remove();
      for (const dir of group.dirs) expect(await exists(dir)).toBe(false);
      await expect.poll(() => isDead(tree.escaped), { timeout: 5000 }).toBe(true);
      await group.remove();
    });

    it("lets a usage sampler count the processes that left the process group", async () => {
      const group = await createTaskCgroup(support!, groupName());
      groups.push(group);
      const tree = await startEscapingTree(group);
      const byGroup = await createGroupUsageSampler(tree.shell).sample();
      const byCgroup = await createGroupUsageSampler(tree.shell, { members: group.pids }).sample();
      expect(byGroup.processes).toBe(2);
      expect(byCgroup.processes).toBe(3);
      expect(byCgroup.rramBytes).toBeGreaterThan(byGroup.rramBytes);
    });

    it("answers an empty group at once", async () => {
      const group = await createTaskCgroup(support!, groupName());
      groups.push(group);
      expect(await group.pids()).toEqual([]);
      await group.killAll({ timeoutMs: 100 });
      await group.remove();
    });
  });
}

const v1Freezer = (await exists("/sys/fs/cgroup/freezer/cgroup.procs")) && detected !== undefined;
const v1: CgroupSupport | undefined = v1Freezer
  ? { version: 1, freezer: "/sys/fs/cgroup/freezer/drce", pids: (await exists("/sys/fs/cgroup/pids/drce")) ? "/sys/fs/cgroup/pids/drce" : undefined }
  : undefined;
describeSupport("cgroup v1 freezer and pids (freeze, kill, thaw)", v1);
describeSupport(`the detected cgroups (${detected === undefined ? "none" : `v${detected.version}`})`, detected);
describeSupport("cgroup v2 with cgroup.kill (hybrid layout's unified hierarchy)", unified);
describeSupport(
  "cgroup v2 without cgroup.kill (freeze, kill, thaw)",
  unified?.version === 2 ? { ...unified, kill: false } : undefined,
);

describe("detectCgroups and createTaskCgroup", () => {
  it("finds nothing where no cgroup hierarchy is mounted", async () => {
    const dir = await mkdtemp(join(tmpdir(), "drce-no-cgroup-"));
    try {
      expect(await detectCgroups(dir)).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(detected === undefined)("refuses group names that could leave drce's parent group", async () => {
    await expect(createTaskCgroup(detected!, "../escape")).rejects.toThrow(/not allowed/);
    await expect(createTaskCgroup(detected!, "..")).rejects.toThrow(/not allowed/);
    await expect(createTaskCgroup(detected!, "")).rejects.toThrow(/not allowed/);
  });

  it.skipIf(detected === undefined || unified?.version !== 2 || !unified.kill)("prefers the unified hierarchy with cgroup.kill over v1 in the hybrid layout", () => {
    expect(detected).toEqual({ version: 2, parent: "/sys/fs/cgroup/unified/drce", kill: true });
  });
});
