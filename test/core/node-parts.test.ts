import { describe, expect, it } from "vitest";
import { EventLog } from "../../src/core/event-log.js";
import { createNodeAdmin } from "../../src/core/node-admin.js";
import { createNodeStats } from "../../src/core/node-stats.js";
import type { NodeParts } from "../../src/core/node-parts.js";
import { ResourceLog } from "../../src/core/resource-log.js";
import { TaskState } from "../../src/domain/states.js";
import { taskStatus } from "../../src/domain/task.js";

/*
 * The node-level services run over NodeParts alone: a manager, which has no task core,
 * store of its own tasks or runner, provides the parts and gets the same administration.
 */

const settings = { name: "manager-1", maxConcurrent: 4, maxQueue: 10, maxOutputBytes: 0, maxTaskMs: 0, maxRequestBytes: 1024, maxFileBytes: 1024, sampleIntervalMs: 1000, eventHistory: 100, reportHistory: 10, allowedDirs: [], allowEnv: [], token: "" };

function managerParts(): NodeParts {
  const events = new EventLog(100);
  const forwarded = [taskStatus({ id: "t2", state: TaskState.InProgress }), taskStatus({ id: "t1", state: TaskState.Finished })];
  return {
    identity: { host: "10.0.0.1", port: 8470, node: "manager-1" },
    role: "manager",
    events,
    slots: { active: 1, queued: 0 },
    list: () => forwarded,
  };
}

describe("NodeParts", () => {
  it("lets a manager answer NodeInfo with its own role and identity", () => {
    const parts = managerParts();
    const admin = createNodeAdmin({
      settings,
      identity: parts.identity,
      role: parts.role,
      version: "0.0.0-test",
      startedAt: 1_000,
      now: () => 6_000,
      core: parts,
      store: { statusWrittenAt: () => Promise.resolve(0) },
      stats: createNodeStats({ startedAt: 1_000 }),
      reports: new ResourceLog(10),
      host: () => {
        throw new Error("not sampled in this test");
      },
    });
    expect(admin.info()).toMatchObject({ name: "manager-1", host: "10.0.0.1", port: 8470, role: "manager", uptimeMs: 5_000 });
    expect(admin.tasks().map((s) => s.id)).toEqual(["t2", "t1"]);
  });

  it("reports a data node as data when no role is given", () => {
    const parts = managerParts();
    const admin = createNodeAdmin({
      settings: { ...settings, name: "data-1" },
      identity: parts.identity,
      version: "0.0.0-test",
      startedAt: 0,
      core: parts,
      store: { statusWrittenAt: () => Promise.resolve(0) },
      stats: createNodeStats({ startedAt: 0 }),
      reports: new ResourceLog(10),
      host: () => {
        throw new Error("not sampled in this test");
      },
    });
    expect(admin.info().role).toBe("data");
  });
});
