import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { TaskEventSchema, TaskMode as ProtoTaskMode, TaskState as ProtoTaskState } from "../../gen/drce/v1/task_pb.js";
import { chunkFromProto, eventFromProto, gapFromProto, identityFromProto, modeFromProto, stateFromProto, summaryFromProto, viewFromProto } from "../../src/client/from-proto.js";
import { chunkToProto, eventToProto, gapToProto, summaryToProto, viewToProto } from "../../src/connect/convert.js";
import { TaskMode, TaskState } from "../../src/domain/states.js";
import { taskStatus } from "../../src/domain/task.js";
import type { TaskView } from "../../src/domain/view.js";

const identity = { host: "10.0.0.7", port: 8470, node: "n7" };

// A finished task with everything a TaskResult carries, and one subtask.
function fullView(): TaskView {
  const sub: TaskView = {
    status: taskStatus({ id: "t1-sub", parentId: "t1", state: TaskState.Terminated, exitStatus: -1, signal: "SIGKILL", mode: TaskMode.Sync }),
    timeMs: 12,
    stdout: new Uint8Array(0),
    stderr: new Uint8Array(0),
    stdoutMore: false,
    stderrMore: false,
    files: [],
    fields: {},
    subtasks: [],
  };
  return {
    status: taskStatus({
      id: "t1",
      alias: "build",
      subtaskIds: ["t1-sub"],
      mode: TaskMode.Async,
      state: TaskState.Finished,
      errorCode: 0,
      errorMessage: "",
      pid: 4242,
      exitStatus: 3,
      startedAt: 1_700_000_000_000,
      finishedAt: 1_700_000_001_500,
      stdoutSize: 10,
      stderrSize: 2_000_000,
      stderrTruncated: true,
      files: [{ name: "out.txt", action: 4 }],
      escapedPids: [4250],
      usage: { TASK_CPU: 12.5 },
    }),
    timeMs: 1500,
    stdout: new TextEncoder().encode("0123456789"),
    stderr: new TextEncoder().encode("head"),
    stdoutMore: false,
    stderrMore: true,
    stderrGap: { offset: 1_000_000, bytes: 500_000 },
    files: [{ name: "out.txt", data: new TextEncoder().encode("done"), action: 4 }],
    fields: { TASK_CPU: 12.5, HOST_LOAD: 0.25 },
    subtasks: [sub],
  };
}

describe("viewFromProto", () => {
  it("reads back every field a node's TaskResult carries, subtasks included", () => {
    const view = fullView();
    const back = viewFromProto(viewToProto(view, identity));
    expect(back).toEqual(view);
  });

  it("gives the same TaskResult when converted again, so a manager forwards what the node said", () => {
    const result = viewToProto(fullView(), identity);
    expect(viewToProto(viewFromProto(result), identityFromProto(result))).toEqual(result);
  });

  it("names the node the result came from", () => {
    expect(identityFromProto(viewToProto(fullView(), identity))).toEqual(identity);
  });
});

describe("enum readers", () => {
  it("reads every proto state as the legacy state one below it", () => {
    for (const state of Object.values(TaskState)) expect(stateFromProto(state + 1)).toBe(state);
  });

  it("reads an unspecified or unknown state as undefined (7), never as a final state", () => {
    expect(stateFromProto(ProtoTaskState.UNSPECIFIED)).toBe(TaskState.Undefined);
    expect(stateFromProto(99)).toBe(TaskState.Undefined);
  });

  it("reads an unspecified mode as sync, as a node does", () => {
    expect(modeFromProto(ProtoTaskMode.UNSPECIFIED)).toBe(TaskMode.Sync);
    expect(modeFromProto(ProtoTaskMode.ASYNC)).toBe(TaskMode.Async);
  });
});

describe("list lines, events, chunks and gaps", () => {
  it("reads a list line back into the status fields it carries", () => {
    const status = taskStatus({ id: "t2", alias: "a", parentId: "p", mode: TaskMode.Async, state: TaskState.InProgress, startedAt: 5, finishedAt: 0, command: "sleep 1", exitStatus: 0 });
    expect(summaryFromProto(summaryToProto(status))).toEqual(status);
  });

  it("reads a task event back with its sequence number, times and status", () => {
    const event = { seq: 17, at: 1_700_000_000_123, timeMs: 40, status: taskStatus({ id: "t3", alias: "x", state: TaskState.Expired, errorCode: 116, errorMessage: "expired", exitStatus: -1, pid: 9 }) };
    expect(eventFromProto(eventToProto(event))).toEqual(event);
  });

  it("reads chunks and gaps of both streams", () => {
    const chunk = { stream: "stderr" as const, offset: 65_536, data: new Uint8Array([1, 2, 3]) };
    expect(chunkFromProto(chunkToProto(chunk))).toEqual(chunk);
    const gap = { stream: "stdout" as const, offset: 10, bytes: 20 };
    expect(gapFromProto(gapToProto(gap))).toEqual(gap);
  });

  it("reads an event with no state as undefined, never as finished", () => {
    expect(eventFromProto(create(TaskEventSchema, { seq: 1n, id: "t" })).status.state).toBe(TaskState.Undefined);
  });
});
