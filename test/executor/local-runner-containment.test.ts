import { PassThrough } from "node:stream";
import { readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { taskSpec } from "../../src/domain/task.js";
import { detectCgroups } from "../../src/executor/cgroup.js";
import { createContainment } from "../../src/executor/containment.js";
import { createLocalRunner } from "../../src/executor/local-runner.js";
import { liveGroupMembers } from "../helpers/proc.js";
import { isDead } from "./proc-helpers.js";

/*
 * The local runner when the spawn cannot be recorded (the store failed): what it started is
 * killed and its control group removed, and start() fails with the store's error.
 */

const support = await detectCgroups();
const modes = [
  { name: "process group only", cgroups: undefined },
  ...(support === undefined ? [] : [{ name: `cgroup v${support.version}`, cgroups: support }]),
];

describe("a spawn that cannot be recorded", () => {
  for (const mode of modes) {
    it(`kills what it started and leaves no group behind (${mode.name})`, async () => {
      const prefix = `rt${process.pid}${mode.cgroups === undefined ? "p" : "c"}.`;
      const runner = createLocalRunner({ containment: createContainment({ cgroups: mode.cgroups, groupPrefix: prefix }) });
      let leader = 0;
      const failure = new Error("storage error while saving a task status (ENOSPC)");
      const start = runner.start({
        spec: taskSpec({ id: "unrecorded", command: "sleep 300 & sleep 300" }),
        workDir: tmpdir(),
        stdout: new PassThrough(),
        stderr: new PassThrough(),
        onSpawn: async (info) => {
          leader = info.pid;
          throw failure;
        },
      });
      await expect(start).rejects.toBe(failure);
      expect(leader).toBeGreaterThan(0);
      await expect.poll(() => isDead(leader), { timeout: 5000 }).toBe(true);
      await expect.poll(() => liveGroupMembers(leader), { timeout: 5000 }).toEqual([]);
      if (mode.cgroups !== undefined) {
        const parent = mode.cgroups.version === 2 ? mode.cgroups.parent : mode.cgroups.freezer;
        expect((await readdir(parent)).filter((name) => name.startsWith(prefix))).toEqual([]);
      }
    });
  }
});
