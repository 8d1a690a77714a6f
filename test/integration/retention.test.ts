import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { TaskState as LegacyState } from "../../src/domain/states.js";
import { metricValue, scrape } from "../helpers/metrics.js";
import { runDrce, type CliResult } from "../helpers/cli.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * Retention of finished tasks on a real node (a server on port 0, real commands): the
 * oldest finished trees go past --retain-max-tasks or --retain-finished, each task as a
 * state 9 event counted in drce_tasks_deleted_total, never an unfinished one, and the
 * bounds apply again to what a restarted node finds on disk.
 */

// Each test starts a node and waits for real commands (or drce processes): minutes on a loaded host.
const nodes: TestNode[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(nodes.splice(0).map((node) => node.stop()));
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function node(overrides: Parameters<typeof startNode>[0] = {}): Promise<TestNode> {
  const started = await startNode(overrides);
  nodes.push(started);
  return started;
}

const sync = (id: string, command = "true") => ({ task: create(TaskSpecSchema, { id, command }) });
const async = (id: string, command: string) => ({ task: create(TaskSpecSchema, { id, command, mode: TaskMode.ASYNC }) });

/** The ids the node holds, sorted. */
async function heldIds(n: TestNode): Promise<string[]> {
  return (await n.client.listTasks({})).tasks.map((t) => t.id).sort();
}

/** Ids of the state 9 events the node has published so far, in order. */
function deletedEvents(n: TestNode): string[] {
  return n.app.core.events
    .since(0)
    .filter((event) => event.status.state === LegacyState.Deleted)
    .map((event) => event.status.id);
}

/** Runs `drce ARGS` against a node to its end. */
function drce(n: TestNode, args: readonly string[]): Promise<CliResult> {
  return runDrce(n.url, args);
}

describe("--retain-max-tasks", { timeout: 120_000 }, () => {
  it("deletes the oldest finished tasks past the bound, each with a state 9 event, counted in the metrics, and their directories", async () => {
    const n = await node({ retainMaxTasks: 3 });
    for (const id of ["r1", "r2", "r3", "r4", "r5"]) {
      const { result } = await n.client.submitTask(sync(id, `echo ${id}`));
      // The sync caller gets its whole result even though the sweep may take the task next.
      expect(new TextDecoder().decode(result?.stdout)).toBe(`${id}\n`);
    }
    // A task leaves the list when its deletion starts, and its event follows its directory's removal.
    expect(await until(() => deletedEvents(n), (ids) => ids.length === 2, 30_000, "two deletions")).toEqual(["r1", "r2"]);
    expect(await heldIds(n)).toEqual(["r3", "r4", "r5"]);
    expect(existsSync(join(n.dataDir, "tasks", "r1"))).toBe(false);
    expect(existsSync(join(n.dataDir, "tasks", "r2"))).toBe(false);
    expect(existsSync(join(n.dataDir, "tasks", "r5", "status.json"))).toBe(true);
    const metrics = await scrape(n.url);
    expect(metricValue(metrics, "drce_tasks_deleted_total", { reason: "retention_count" })).toBe(2);
    expect(metricValue(metrics, "drce_tasks_deleted_total", { reason: "retention_age" })).toBe(0);
    expect(metricValue(metrics, "drce_tasks_deleted_total", { reason: "request" })).toBe(0);
    // A deleted task is unknown from then on: NotFound.
    await expect(n.client.getTask({ task: "r1" })).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("never deletes an unfinished task, even when only unfinished ones are left past the bound", async () => {
    const n = await node({ retainMaxTasks: 2 });
    await n.client.submitTask(async("long-1", "sleep 30"));
    await n.client.submitTask(async("long-2", "sleep 30"));
    await n.client.submitTask(async("long-3", "sleep 30"));
    await n.client.submitTask(sync("short-1"));
    await n.client.submitTask(sync("short-2"));
    expect(await until(() => deletedEvents(n), (ids) => ids.length === 2, 30_000, "the finished ones gone")).toEqual(["short-1", "short-2"]);
    expect(await heldIds(n)).toEqual(["long-1", "long-2", "long-3"]);
    for (const id of ["long-1", "long-2", "long-3"]) {
      expect((await n.client.getTask({ task: id })).result?.state).toBe(TaskState.IN_PROGRESS);
    }
    // Once one ends, the node holds one task too many again, and the finished one goes.
    await n.client.terminateTask({ task: "long-1" });
    expect(await until(() => deletedEvents(n), (ids) => ids.length === 3, 30_000, "the terminated one gone")).toEqual(["short-1", "short-2", "long-1"]);
    expect(await heldIds(n)).toEqual(["long-2", "long-3"]);
    await n.client.terminateTask({ task: "long-2" });
    await n.client.terminateTask({ task: "long-3" });
  });

  it("keeps a tree whole: a parent goes with its subtasks, and not while an async subtask runs", async () => {
    const n = await node({ retainMaxTasks: 4 });
    const tree = create(TaskSpecSchema, {
      id: "tree",
      command: "true",
      subtasks: [create(TaskSpecSchema, { id: "tree-sync", command: "true" }), create(TaskSpecSchema, { id: "tree-async", command: "sleep 30", mode: TaskMode.ASYNC })],
    });
    await n.client.submitTask({ task: tree });
    await n.client.submitTask(sync("after-1"));
    await n.client.submitTask(sync("after-2"));
    // The tree's root is final but its async subtask runs: only finished trees can go, so
    // five tasks on a bound of four cost after-1, which finished after the tree's root.
    expect(await until(() => deletedEvents(n), (ids) => ids.length === 1, 30_000, "after-1 gone")).toEqual(["after-1"]);
    expect(await heldIds(n)).toEqual(["after-2", "tree", "tree-async", "tree-sync"]);
    expect((await n.client.getTask({ task: "tree" })).result?.state).toBe(TaskState.FINISHED);
    await n.client.terminateTask({ task: "tree-async" });
    await until(async () => (await n.client.getTask({ task: "tree-async" })).result?.state, (s) => s === TaskState.TERMINATED, 30_000, "tree-async terminated");
    // The tree counts as finished when its last task did, after after-2: after-2 goes first.
    await n.client.submitTask(sync("after-3"));
    expect(await until(() => deletedEvents(n), (ids) => ids.length === 2, 30_000, "after-2 gone")).toEqual(["after-1", "after-2"]);
    // Then the tree, its three tasks together.
    await n.client.submitTask(sync("after-4"));
    expect(await until(() => deletedEvents(n), (ids) => ids.length === 5, 30_000, "the tree gone")).toEqual(["after-1", "after-2", "tree-sync", "tree-async", "tree"]);
    expect(await heldIds(n)).toEqual(["after-3", "after-4"]);
    expect(metricValue(await scrape(n.url), "drce_tasks_deleted_total", { reason: "retention_count" })).toBe(5);
  });

  it("lets concurrent sync callers and attached runs receive their results before their tasks go", async () => {
    const n = await node({ retainMaxTasks: 1 });
    const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => n.client.submitTask(sync(`c${i}`, `echo out-${i}`))));
    replies.forEach((reply, i) => expect(new TextDecoder().decode(reply.result?.stdout)).toBe(`out-${i}\n`));
    let output = "";
    let final: TaskState | undefined;
    for await (const message of n.client.runTask({ task: create(TaskSpecSchema, { id: "attached", command: "seq 1 20000" }) })) {
      if (message.event.case === "output") output += new TextDecoder().decode(message.event.value.data);
      if (message.event.case === "result") final = message.event.value.state;
    }
    expect(final).toBe(TaskState.FINISHED);
    expect(output.split("\n").length).toBe(20001);
    expect(await until(() => heldIds(n), (ids) => ids.length === 1, 30_000, "one task left")).toEqual(["attached"]);
  });
});

describe("--retain-finished", { timeout: 120_000 }, () => {
  it("deletes a finished task once it is older than the bound, and leaves a running one", async () => {
    const n = await node({ retainFinishedMs: 1500 });
    await n.client.submitTask(async("running", "sleep 30"));
    await n.client.submitTask(sync("done"));
    const finishedAt = Number((await n.client.getTask({ task: "done" })).result?.finishedAtMs);
    await until(() => deletedEvents(n), (ids) => ids.includes("done"), 30_000, "the finished task gone");
    // Not before its time: the deletion came at least the bound after it finished.
    const deletion = n.app.core.events.since(0).find((event) => event.status.id === "done" && event.status.state === LegacyState.Deleted);
    expect(deletion?.at).toBeGreaterThanOrEqual(finishedAt + 1500);
    expect(await heldIds(n)).toEqual(["running"]);
    expect(metricValue(await scrape(n.url), "drce_tasks_deleted_total", { reason: "retention_age" })).toBe(1);
    await n.client.terminateTask({ task: "running" });
  });
});

describe("retention across a restart", { timeout: 120_000 }, () => {
  it("applies the bounds to the tasks a restarted node finds on disk, oldest first", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "drce-retain-"));
    dirs.push(dataDir);
    const first = await node({ dataDir, retainMaxTasks: 0 });
    for (const id of ["a1", "a2", "a3", "a4", "a5"]) await first.client.submitTask(sync(id));
    await first.client.submitTask(async("a6-running", "sleep 30"));
    await first.stop();
    nodes.splice(nodes.indexOf(first), 1);

    // The running one ended with the shutdown, the newest finished tree.
    const second = await node({ dataDir, retainMaxTasks: 3 });
    expect(await until(() => deletedEvents(second), (ids) => ids.length === 3, 30_000, "three deletions")).toEqual(["a1", "a2", "a3"]);
    expect(await heldIds(second)).toEqual(["a4", "a5", "a6-running"]);
    expect((await readdir(join(dataDir, "tasks"))).sort()).toEqual(["a4", "a5", "a6-running"]);
    await second.stop();
    nodes.splice(nodes.indexOf(second), 1);

    const third = await node({ dataDir, retainFinishedMs: 1 });
    await until(() => deletedEvents(third), (ids) => ids.length === 3, 30_000, "every task gone");
    expect(await heldIds(third)).toEqual([]);
    expect(await readdir(join(dataDir, "tasks"))).toEqual([]);
    expect(metricValue(await scrape(third.url), "drce_tasks_deleted_total", { reason: "retention_age" })).toBe(3);
  });
});

describe("drce rm", { timeout: 120_000 }, () => {
  it("deletes several tasks, goes on past an unknown one, and exits 3 naming it", async () => {
    const n = await node({ retainMaxTasks: 0 });
    for (const id of ["m1", "m2", "m3"]) await n.client.submitTask(sync(id));
    const out = await drce(n, ["rm", "m1", "no-such-task", "m3"]);
    expect(out).toMatchObject({ code: 3, stdout: "m1\tdeleted\nm3\tdeleted\n" });
    expect(out.stderr).toMatch(/^drce: not_found: .*no-such-task/);
    expect(await heldIds(n)).toEqual(["m2"]);
    expect(metricValue(await scrape(n.url), "drce_tasks_deleted_total", { reason: "request" })).toBe(2);
  });

  it("refuses a running task among others with failed_precondition and exits 125, deleting the rest", async () => {
    const n = await node({ retainMaxTasks: 0 });
    await n.client.submitTask(async("busy", "sleep 30"));
    await n.client.submitTask(sync("idle"));
    const out = await drce(n, ["rm", "busy", "idle"]);
    expect(out).toMatchObject({ code: 125, stdout: "idle\tdeleted\n" });
    expect(out.stderr).toMatch(/^drce: failed_precondition: task busy is still running; terminate it first \(error \d+\)/);
    expect(await heldIds(n)).toEqual(["busy"]);
    await n.client.terminateTask({ task: "busy" });
  });

  it("removes finished tasks in bulk with --finished, and only those older than --older-than", async () => {
    const n = await node({ retainMaxTasks: 0 });
    await n.client.submitTask(async("bulk-running", "sleep 30"));
    for (const id of ["b1", "b2"]) await n.client.submitTask(sync(id));
    expect(await drce(n, ["rm", "--finished", "--older-than", "1h"])).toMatchObject({ code: 0, stdout: "" });
    expect(await heldIds(n)).toEqual(["b1", "b2", "bulk-running"]);
    // Oldest first; the running one stays.
    expect(await drce(n, ["rm", "--finished", "--older-than", "0"])).toMatchObject({ code: 0, stdout: "b1\tdeleted\nb2\tdeleted\n" });
    expect(await heldIds(n)).toEqual(["bulk-running"]);
    await n.client.terminateTask({ task: "bulk-running" });
    await until(async () => (await n.client.getTask({ task: "bulk-running" })).result?.state, (s) => s === TaskState.TERMINATED, 30_000, "terminated");
    expect(await drce(n, ["rm", "--finished"])).toMatchObject({ code: 0, stdout: "bulk-running\tdeleted\n" });
    expect(await heldIds(n)).toEqual([]);
  });

  it("refuses unclear bulk requests as usage errors (exit 2), deleting nothing", async () => {
    const n = await node({ retainMaxTasks: 0 });
    await n.client.submitTask(sync("u1"));
    for (const [args, message] of [
      [["rm", "--older-than", "1h"], /--older-than goes with --finished/],
      [["rm", "--finished", "--older-than", "7"], /expected a duration/],
      [["rm", "--finished", "u1"], /give task ids or --finished, not both/],
      [["rm"], /a task id or alias is required/],
    ] as const) {
      const out = await drce(n, args);
      expect(out.code, args.join(" ")).toBe(2);
      expect(out.stderr, args.join(" ")).toMatch(message);
    }
    expect(await heldIds(n)).toEqual(["u1"]);
  });
});

describe("deleting through the API", { timeout: 120_000 }, () => {
  it("answers an unknown id with NotFound and a running task with FailedPrecondition", async () => {
    const n = await node({ retainMaxTasks: 0 });
    const unknown = await n.client.deleteTask({ task: "nope" }).catch((error: unknown) => error);
    expect(unknown).toBeInstanceOf(ConnectError);
    expect((unknown as ConnectError).code).toBe(Code.NotFound);
    await n.client.submitTask(async("alive", "sleep 30"));
    const running = await n.client.deleteTask({ task: "alive" }).catch((error: unknown) => error);
    expect((running as ConnectError).code).toBe(Code.FailedPrecondition);
    expect((running as ConnectError).metadata.get("drce-error-code")).toBe("121");
    await n.client.terminateTask({ task: "alive" });
  });
});
