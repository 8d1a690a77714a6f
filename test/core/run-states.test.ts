import { Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { toConnectError } from "../../src/connect/errors.js";
import { DrceError, ErrorCode } from "../../src/domain/errors.js";
import { TaskMode, TaskState } from "../../src/domain/states.js";
import { taskSpec, type TaskSpec } from "../../src/domain/task.js";
import { expiryTerminate } from "../../src/core/terminate-policies.js";
import { scriptedCore, until, type ScriptedCore } from "./core-fixture.js";

let node: ScriptedCore;
afterEach(async () => {
  await node.close();
});

const sync = (fields: Partial<TaskSpec>): TaskSpec => taskSpec({ command: "done", mode: TaskMode.Sync, ...fields });
const async_ = (fields: Partial<TaskSpec>): TaskSpec => taskSpec({ command: "done", mode: TaskMode.Async, ...fields });
const kill = { alg: 2, delayMs: 10, repeat: 1, signal: 9, cleanup: false } as const;

/** The states a task's events went through, in order. */
const statesOf = (id: string): number[] => node.events.filter((event) => event.status.id === id).map((event) => event.status.state);

describe("a task's run in the core", () => {
  it("goes new, in progress, finished, with its exit status and output", async () => {
    node = await scriptedCore();
    node.runner.define("talk", [{ out: "stdout", data: "hello\n" }, { out: "stderr", data: "warn\n" }, { exit: 3 }]);
    const { view } = await node.core.submit(sync({ id: "t", command: "talk" }));
    expect(view.status).toMatchObject({ state: TaskState.Finished, exitStatus: 3, errorCode: ErrorCode.None, stdoutSize: 6, stderrSize: 5 });
    expect(Buffer.from(view.stdout ?? []).toString()).toBe("hello\n");
    expect(Buffer.from(view.stderr ?? []).toString()).toBe("warn\n");
    expect(statesOf("t")).toEqual([TaskState.New, TaskState.InProgress, TaskState.Finished]);
  });

  it("waits in the queue for a slot, and runs once one is free", async () => {
    node = await scriptedCore({ maxConcurrent: 1 });
    node.runner.define("held", [{ gate: "go" }, { exit: 0 }]);
    await node.core.submit(async_({ id: "first", command: "held" }));
    await node.core.submit(async_({ id: "second" }));
    await until(() => statesOf("second").includes(TaskState.Queued), "the second task queued");
    node.runner.open("go");
    await until(() => statesOf("second").includes(TaskState.Finished), "the second task finished");
    expect(statesOf("second")).toEqual([TaskState.New, TaskState.Queued, TaskState.InProgress, TaskState.Finished]);
  });

  it("ends terminated with no error when a caller terminates it, by the algorithm asked for", async () => {
    node = await scriptedCore();
    node.runner.define("hang", [{ hang: true }]);
    await node.core.submit(async_({ id: "t", command: "hang" }));
    await until(() => node.runner.handed("t"), "the process running");
    const view = await node.core.terminate("t", kill);
    expect(view.status).toMatchObject({ state: TaskState.Terminated, errorCode: ErrorCode.None, exitStatus: 137, signal: "SIGKILL" });
    expect(node.runner.startOf("t")?.terminations).toEqual([kill]);
  });

  it("expires with 116 once its timeout passes, stopped by the expiry policy", async () => {
    node = await scriptedCore();
    node.runner.define("hang", [{ hang: true }]);
    const { view } = await node.core.submit(sync({ id: "t", command: "hang", timeMaxMs: 20 }));
    expect(view.status).toMatchObject({ state: TaskState.Expired, errorCode: ErrorCode.TerminatedExpired, exitStatus: 143 });
    expect(node.runner.startOf("t")?.terminations).toEqual([expiryTerminate]);
  });

  it("keeps the first reason it was stopped for: a terminate before the timeout ends it terminated", async () => {
    node = await scriptedCore();
    node.runner.define("stubborn", [{ gate: "never" }, { hang: true }]);
    const submitted = node.core.submit(sync({ id: "t", command: "stubborn", timeMaxMs: 30 }));
    await until(() => node.runner.handed("t"), "the process running");
    // The scripted process ignores the terminate at its gate, so the timeout passes meanwhile
    // and stops it again; the first reason is the one it ends with.
    const terminating = node.core.terminate("t", kill);
    await until(() => node.runner.startOf("t")?.terminations.length === 2, "the timeout's stop");
    expect(node.runner.startOf("t")?.terminations).toEqual([kill, expiryTerminate]);
    node.runner.open("never");
    const { view } = await submitted;
    await terminating;
    expect(view.status).toMatchObject({ state: TaskState.Terminated, errorCode: ErrorCode.None });
  });

  it("ends a queued task whose ttl passes unrun: not set, 104", async () => {
    node = await scriptedCore({ maxConcurrent: 1 });
    node.runner.define("hang", [{ hang: true }]);
    await node.core.submit(async_({ id: "busy", command: "hang" }));
    const { view } = await node.core.submit(sync({ id: "late", ttlMs: 10 }));
    expect(view.status).toMatchObject({ state: TaskState.NotSet, errorCode: ErrorCode.CreateTask });
    expect(view.status.errorMessage).toMatch(/ttl of 10 ms passed/);
    expect(node.runner.startOf("late")).toBeUndefined();
  });

  it("ends a queued task a caller terminates without starting it", async () => {
    node = await scriptedCore({ maxConcurrent: 1 });
    node.runner.define("hang", [{ hang: true }]);
    await node.core.submit(async_({ id: "busy", command: "hang" }));
    await node.core.submit(async_({ id: "waiting" }));
    await until(() => statesOf("waiting").includes(TaskState.Queued), "queued");
    const view = await node.core.terminate("waiting", kill);
    expect(view.status.state).toBe(TaskState.Terminated);
    expect(node.runner.startOf("waiting")).toBeUndefined();
  });

  it("refuses to terminate a final task: FailedPrecondition, legacy 113", async () => {
    node = await scriptedCore();
    await node.core.submit(sync({ id: "t" }));
    const error = (await node.core.terminate("t", kill).catch((thrown: unknown) => thrown)) as DrceError;
    expect(error).toBeInstanceOf(DrceError);
    expect([error.kind, error.legacyCode]).toEqual(["precondition", ErrorCode.Terminate]);
    expect(toConnectError(error).code).toBe(Code.FailedPrecondition);
  });

  it("ends not set with the runner's code when its process cannot start", async () => {
    node = await scriptedCore();
    node.runner.define("missing", { steps: [], spawnFailure: { errorCode: ErrorCode.ShellNotExist, message: "cannot start: not found" } });
    const { view } = await node.core.submit(sync({ command: "missing" }));
    expect(view.status).toMatchObject({ state: TaskState.NotSet, errorCode: ErrorCode.ShellNotExist, errorMessage: "cannot start: not found" });
  });

  it("ends not set with a refusal's own code when the runner refuses the start", async () => {
    node = await scriptedCore();
    node.runner.define("refused", { steps: [], startError: new DrceError("unavailable", "SSH connection refused", { legacyCode: ErrorCode.CommandExecution }) });
    const { view } = await node.core.submit(sync({ command: "refused" }));
    expect(view.status).toMatchObject({ state: TaskState.NotSet, errorCode: ErrorCode.CommandExecution, errorMessage: "SSH connection refused" });
    expect(node.internalErrors).toEqual([]);
  });

  it("reports a fault of the runner as an internal error, counted, and ends the task with 107", async () => {
    node = await scriptedCore();
    const fault = new TypeError("a bug in the runner");
    node.runner.define("buggy", { steps: [], startError: fault });
    const { view } = await node.core.submit(sync({ command: "buggy" }));
    expect(view.status).toMatchObject({ state: TaskState.NotSet, errorCode: ErrorCode.ExecuteTask, errorMessage: "internal error while running the task" });
    expect(node.internalErrors).toEqual([fault]);
    expect(node.core.internalErrors()).toBe(1);
  });

  it("refuses an SSH task on a node without SSH: not set, 5001", async () => {
    node = await scriptedCore();
    const { view } = await node.core.submit(sync({ session: { type: "ssh", host: "example.invalid", port: 22, user: "u", password: "p", privateKey: "", passphrase: "" } as TaskSpec["session"] }));
    expect(view.status).toMatchObject({ state: TaskState.NotSet, errorCode: ErrorCode.NodeModeNotSupported });
    expect(view.status.errorMessage).toBe("SSH sessions are not enabled on this node");
  });

  it("feeds an open_stdin task's input to its process, and refuses input to one without", async () => {
    node = await scriptedCore();
    node.runner.define("reader", [{ gate: "read" }, { exit: 0 }]);
    await node.core.submit(async_({ id: "in", command: "reader", openStdin: true }));
    await node.core.writeInput("in", Buffer.from("line\n"));
    await node.core.endInput("in");
    expect(Buffer.concat(node.runner.startOf("in")?.input ?? []).toString()).toBe("line\n");
    expect(node.runner.startOf("in")?.inputEnded).toBe(true);
    node.runner.open("read");
    await node.core.submit(sync({ id: "closed" }));
    await expect(node.core.writeInput("closed", Buffer.from("x"))).rejects.toMatchObject({ kind: "precondition" });
  });

  it("stops its running tasks when the node shuts down", async () => {
    node = await scriptedCore();
    node.runner.define("hang", [{ hang: true }]);
    await node.core.submit(async_({ id: "t", command: "hang" }));
    await until(() => node.runner.handed("t"), "the process running");
    await node.core.shutdown(400);
    expect((await node.core.check("t", false)).status).toMatchObject({ state: TaskState.Terminated, errorCode: ErrorCode.Canceled, errorMessage: "the node shut down" });
  });
});
