import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/domain/errors.js";
import { TaskMode, TaskState } from "../../src/domain/states.js";
import { taskSpec, type TaskSpec } from "../../src/domain/task.js";
import { scriptedCore, until, type ScriptedCore } from "./core-fixture.js";

let node: ScriptedCore;
afterEach(async () => {
  await node.close();
});

const sync = (fields: Partial<TaskSpec>): TaskSpec => taskSpec({ command: "done", mode: TaskMode.Sync, ...fields });
const async_ = (fields: Partial<TaskSpec>): TaskSpec => taskSpec({ command: "done", mode: TaskMode.Async, ...fields });
const kill = { alg: 2, delayMs: 10, repeat: 1, signal: 9, cleanup: false } as const;

/** The ids of the tasks the runner started, in order. */
const startOrder = (): string[] => node.runner.starts.map((start) => start.request.spec.id);

describe("a task tree in the core", () => {
  it("runs the parent, then its sync subtasks one after the other, in request order", async () => {
    node = await scriptedCore({ maxConcurrent: 4 });
    const { view } = await node.core.submit(sync({ id: "p", subtasks: [sync({ id: "a" }), sync({ id: "b" }), sync({ id: "c" })] }));
    expect(startOrder()).toEqual(["p", "a", "b", "c"]);
    expect([view.status.state, ...view.subtasks.map((sub) => sub.status.state)]).toEqual(Array(4).fill(TaskState.Finished));
  });

  it("starts the subtask after an async one without waiting for it", async () => {
    node = await scriptedCore({ maxConcurrent: 4 });
    node.runner.define("held", [{ gate: "a" }, { exit: 0 }]);
    await node.core.submit(async_({ id: "p", subtasks: [async_({ id: "a", command: "held" }), sync({ id: "b" })] }));
    await until(() => node.runner.startOf("b") !== undefined, "b started while a waits");
    expect((await node.core.check("a", false)).status.state).toBe(TaskState.InProgress);
    node.runner.open("a");
  });

  it("keeps the parent in progress until its sync subtasks are final, with its own exit status kept", async () => {
    node = await scriptedCore({ maxConcurrent: 1 });
    node.runner.define("parent", [{ exit: 4 }]);
    node.runner.define("held", [{ gate: "child" }, { exit: 0 }]);
    await node.core.submit(async_({ id: "p", command: "parent", subtasks: [sync({ id: "c", command: "held" })] }));
    // One slot: the parent gave its slot up to its subtask, or the subtask could never start.
    await until(() => node.runner.handed("c"), "the subtask running");
    expect((await node.core.check("p", false)).status).toMatchObject({ state: TaskState.InProgress, exitStatus: 4 });
    node.runner.open("child");
    await until(() => node.events.some((event) => event.status.id === "p" && event.status.state === TaskState.Finished), "the parent final");
  });

  it("cancels the subtasks of a terminated parent that had not started: terminated, 118", async () => {
    node = await scriptedCore();
    node.runner.define("hang", [{ hang: true }]);
    await node.core.submit(async_({ id: "p", command: "hang", subtasks: [sync({ id: "a" }), sync({ id: "b", subtasks: [sync({ id: "b1" })] })] }));
    await until(() => node.runner.handed("p"), "the parent running");
    await node.core.terminate("p", kill);
    for (const id of ["a", "b", "b1"]) {
      expect((await node.core.check(id, false)).status).toMatchObject({ state: TaskState.Terminated, errorCode: ErrorCode.Canceled, errorMessage: "parent task was stopped" });
    }
    expect(startOrder()).toEqual(["p"]);
  });

  it("terminates a running subtask with its parent: 118, and the rest never start", async () => {
    node = await scriptedCore();
    node.runner.define("hang", [{ hang: true }]);
    await node.core.submit(async_({ id: "p", subtasks: [sync({ id: "a", command: "hang" }), sync({ id: "b" })] }));
    await until(() => node.runner.handed("a"), "the subtask running");
    await node.core.terminate("p", kill);
    // The parent's own command had ended well: it keeps its result, and its tree stops.
    await until(() => node.events.some((event) => event.status.id === "p" && event.status.state === TaskState.Finished), "the parent final");
    expect((await node.core.check("a", false)).status).toMatchObject({ state: TaskState.Terminated, errorCode: ErrorCode.Canceled, errorMessage: "parent task was terminated" });
    expect((await node.core.check("b", false)).status).toMatchObject({ state: TaskState.Terminated, errorCode: ErrorCode.Canceled });
    expect(node.runner.startOf("b")).toBeUndefined();
  });

  it("runs no subtask of a parent whose process could not start", async () => {
    node = await scriptedCore();
    node.runner.define("missing", { steps: [], spawnFailure: { errorCode: ErrorCode.ShellNotExist, message: "not found" } });
    const { view } = await node.core.submit(sync({ id: "p", command: "missing", subtasks: [sync({ id: "a" })] }));
    expect(view.status.errorCode).toBe(ErrorCode.ShellNotExist);
    expect(view.subtasks[0]?.status).toMatchObject({ state: TaskState.Terminated, errorCode: ErrorCode.Canceled });
    expect(startOrder()).toEqual(["p"]);
  });

  it("expires a subtask still running when its parent's time_max passes: 117", async () => {
    node = await scriptedCore();
    node.runner.define("hang", [{ hang: true }]);
    const { view } = await node.core.submit(sync({ id: "p", timeMaxMs: 40, subtasks: [sync({ id: "slow", command: "hang" })] }));
    expect(view.subtasks[0]?.status).toMatchObject({ state: TaskState.Expired, errorCode: ErrorCode.TerminatedSubtaskExpired });
    // The parent's own command had ended well before its time_max: it finished.
    expect(view.status.state).toBe(TaskState.Finished);
  });

  it("bounds an async subtask by its parent's time_max after the parent is final", async () => {
    node = await scriptedCore();
    node.runner.define("hang", [{ hang: true }]);
    const { view } = await node.core.submit(sync({ id: "p", timeMaxMs: 40, subtasks: [async_({ id: "slow", command: "hang" })] }));
    expect(view.status.state).toBe(TaskState.Finished);
    await until(() => node.events.some((event) => event.status.id === "slow" && event.status.state === TaskState.Expired), "the async subtask expired");
    expect((await node.core.check("slow", false)).status.errorCode).toBe(ErrorCode.TerminatedSubtaskExpired);
  });
});
