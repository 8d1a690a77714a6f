import type { TaskStatus } from "../../src/domain/task.js";

/** A status with every field at its default but those given. */
export function testStatus(fields: Partial<TaskStatus>): TaskStatus {
  return {
    id: "1",
    alias: "",
    parentId: "",
    subtaskIds: [],
    mode: 1,
    state: 0,
    errorCode: 0,
    errorMessage: "",
    pid: 0,
    pgid: 0,
    procStartTicks: 0,
    exitStatus: 0,
    signal: "",
    submittedAt: 0,
    startedAt: 0,
    finishedAt: 0,
    stdoutSize: 0,
    stderrSize: 0,
    stdoutTruncated: false,
    stderrTruncated: false,
    files: [],
    escapedPids: [],
    command: "",
    usage: {},
    ...fields,
  };
}
