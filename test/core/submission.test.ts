import { Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { toConnectError } from "../../src/connect/errors.js";
import { DrceError, ErrorCode } from "../../src/domain/errors.js";
import { TaskMode, TaskState } from "../../src/domain/states.js";
import { taskSpec, type TaskSpec } from "../../src/domain/task.js";
import { scriptedCore, type ScriptedCore } from "./core-fixture.js";

let node: ScriptedCore;
afterEach(async () => {
  await node.close();
});

/** The error a call rejects with, as a DrceError. */
async function refusal(call: Promise<unknown>): Promise<DrceError> {
  const error: unknown = await call.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(DrceError);
  return error as DrceError;
}

const sync = (fields: Partial<TaskSpec>): TaskSpec => taskSpec({ command: "done", mode: TaskMode.Sync, ...fields });
const async_ = (fields: Partial<TaskSpec>): TaskSpec => taskSpec({ command: "done", mode: TaskMode.Async, ...fields });

describe("submitting to the core", () => {
  it("gives a task without an id a numeric one, and its subtasks ids of their own", async () => {
    node = await scriptedCore();
    const { view } = await node.core.submit(sync({ subtasks: [sync({}), sync({})] }));
    const ids = [view.status.id, ...view.subtasks.map((sub) => sub.status.id)];
    for (const id of ids) expect(id).toMatch(/^\d+$/);
    expect(new Set(ids).size).toBe(3);
    expect(view.status.subtaskIds).toEqual(ids.slice(1));
    expect(view.subtasks.map((sub) => sub.status.parentId)).toEqual([view.status.id, view.status.id]);
  });

  it("keeps the id a request gives, and an alias that names the task", async () => {
    node = await scriptedCore();
    await node.core.submit(sync({ id: "given", alias: "nightly" }));
    expect((await node.core.check("nightly", false)).status.id).toBe("given");
    expect((await node.core.check("given", false)).status.alias).toBe("nightly");
  });

  it("answers a resubmission of the same request with the task it made, running nothing new", async () => {
    node = await scriptedCore();
    node.runner.define("out", [{ out: "stdout", data: "once\n" }, { exit: 0 }]);
    const first = await node.core.submit(sync({ id: "same", command: "out" }));
    const again = await node.core.submit(sync({ id: "same", command: "out" }));
    expect(first.existing).toBe(false);
    expect(again.existing).toBe(true);
    expect(Buffer.from(again.view.stdout ?? []).toString()).toBe("once\n");
    expect(node.runner.starts).toHaveLength(1);
  });

  it("runs concurrent identical submissions exactly once", async () => {
    node = await scriptedCore();
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => node.core.submit(async_({ id: "racy" }))));
    expect(outcomes.filter((outcome) => !outcome.existing)).toHaveLength(1);
    await node.core.submit(sync({ id: "after" }));
    expect(node.runner.starts.filter((start) => start.request.spec.id === "racy")).toHaveLength(1);
  });

  it("refuses the same id with a different request: AlreadyExists, legacy 104", async () => {
    node = await scriptedCore();
    await node.core.submit(sync({ id: "taken" }));
    const error = await refusal(node.core.submit(sync({ id: "taken", command: "other" })));
    expect(error.kind).toBe("exists");
    expect(error.legacyCode).toBe(ErrorCode.CreateTask);
    expect(toConnectError(error).code).toBe(Code.AlreadyExists);
    expect(toConnectError(error).metadata.get("drce-error-code")).toBe("104");
  });

  it("refuses a subtask's id for a new root: AlreadyExists, legacy 104", async () => {
    node = await scriptedCore();
    await node.core.submit(sync({ id: "root", subtasks: [sync({ id: "child" })] }));
    const error = await refusal(node.core.submit(sync({ id: "child" })));
    expect([error.kind, error.legacyCode]).toEqual(["exists", ErrorCode.CreateTask]);
  });

  it("refuses an alias an unfinished task holds, and lets it go once that task is final", async () => {
    node = await scriptedCore();
    node.runner.define("hang", [{ hang: true }]);
    await node.core.submit(async_({ id: "holder", alias: "job", command: "hang" }));
    const error = await refusal(node.core.submit(async_({ alias: "job" })));
    expect([error.kind, error.legacyCode]).toEqual(["exists", ErrorCode.CreateTask]);
    expect(toConnectError(error).code).toBe(Code.AlreadyExists);
    await node.core.terminate("holder", { alg: 2, delayMs: 10, repeat: 1, signal: 9, cleanup: false });
    const { view } = await node.core.submit(sync({ id: "next", alias: "job" }));
    expect(view.status.state).toBe(TaskState.Finished);
    expect((await node.core.check("job", false)).status.id).toBe("next");
  });

  it("names an unknown id or alias NotFound, legacy 0", async () => {
    node = await scriptedCore();
    const error = await refusal(node.core.check("nobody", false));
    expect([error.kind, error.legacyCode]).toEqual(["not-found", ErrorCode.None]);
    expect(toConnectError(error).code).toBe(Code.NotFound);
  });

  it("refuses a malformed request before anything is stored: InvalidArgument", async () => {
    node = await scriptedCore();
    const error = await refusal(node.core.submit(taskSpec({ command: "", argv: [], mode: TaskMode.Sync })));
    expect(error.kind).toBe("invalid");
    expect(toConnectError(error).code).toBe(Code.InvalidArgument);
    expect(node.core.list()).toEqual([]);
  });

  it("refuses new tasks once it is shutting down: Unavailable", async () => {
    node = await scriptedCore();
    await node.core.shutdown(10);
    const error = await refusal(node.core.submit(sync({})));
    expect(error.kind).toBe("unavailable");
    expect(toConnectError(error).code).toBe(Code.Unavailable);
  });

  it("refuses past its queue: ResourceExhausted", async () => {
    node = await scriptedCore({ maxConcurrent: 1, maxQueue: 1 });
    node.runner.define("hang", [{ hang: true }]);
    await node.core.submit(async_({ id: "runs", command: "hang" }));
    await node.core.submit(async_({ id: "waits", command: "hang" }));
    const error = await refusal(node.core.submit(async_({ id: "refused" })));
    expect(error.kind).toBe("exhausted");
    expect(toConnectError(error).code).toBe(Code.ResourceExhausted);
    await expect(node.core.check("refused", false)).rejects.toMatchObject({ kind: "not-found" });
  });

  it("lists its tasks newest first", async () => {
    node = await scriptedCore();
    await node.core.submit(sync({ id: "older" }));
    // Submission times are in ms: two tasks of the same ms would tie, so the clock moves on first.
    const older = node.core.list()[0]!.submittedAt;
    while (Date.now() === older);
    await node.core.submit(sync({ id: "newer" }));
    expect(node.core.list().map((status) => status.id)).toEqual(["newer", "older"]);
  });
});
