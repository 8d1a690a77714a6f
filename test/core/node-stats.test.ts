import { describe, expect, it } from "vitest";
import type { TaskEvent } from "../../src/core/api.js";
import { createNodeStats, isFailure } from "../../src/core/node-stats.js";
import { TaskState } from "../../src/domain/states.js";
import type { TaskStatus } from "../../src/domain/task.js";
import { testStatus } from "../helpers/status.js";

const t0 = 1_700_000_000_000;
let seq = 0;

function status(fields: Partial<TaskStatus>): TaskStatus {
  return testStatus({ id: "t", state: TaskState.New, submittedAt: t0, command: "true", ...fields });
}

function event(s: TaskStatus, at: number, timeMs = 0): TaskEvent {
  return { seq: ++seq, status: s, timeMs, at };
}

/** Feeds a task's life: new, then its final status at `at`. */
function life(stats: ReturnType<typeof createNodeStats>, final: Partial<TaskStatus> & { id: string }, at: number, timeMs = 10): void {
  stats.record(event(status({ id: final.id, mode: final.mode ?? 1 }), at));
  stats.record(event(status({ startedAt: at - timeMs, finishedAt: at, ...final }), at, timeMs));
}

describe("node task statistics", () => {
  it("calls a task a failure unless it finished with exit status 0 and error code 0", () => {
    expect(isFailure(status({ state: TaskState.Finished }))).toBe(false);
    expect(isFailure(status({ state: TaskState.Finished, exitStatus: 3 }))).toBe(true);
    expect(isFailure(status({ state: TaskState.Finished, errorCode: 203 }))).toBe(true);
    for (const state of [TaskState.Terminated, TaskState.Crashed, TaskState.NotSet, TaskState.Expired]) expect(isFailure(status({ state }))).toBe(true);
  });

  it("counts each task once per mode, with min/avg/max of time, stdin and stdout sizes", () => {
    let now = t0;
    const stats = createNodeStats({ startedAt: t0, now: () => now });
    life(stats, { id: "a", state: TaskState.Finished, inputSize: 10, stdoutSize: 100 }, t0 + 1000, 20);
    life(stats, { id: "b", state: TaskState.Finished, exitStatus: 1, inputSize: 30, stdoutSize: 300 }, t0 + 2000, 40);
    life(stats, { id: "c", mode: 2, state: TaskState.Expired, errorCode: 116, stdoutSize: 5, usage: { TASK_CPU: 50, TASK_RRAM: 4096 } }, t0 + 3000, 1000);
    now = t0 + 5000;
    const s = stats.snapshot();
    expect(s.sync).toMatchObject({ tasks: 2, failed: 1 });
    expect(s.sync.timeMs).toEqual({ min: 20, avg: 30, max: 40, count: 2 });
    expect(s.sync.inputBytes).toEqual({ min: 10, avg: 20, max: 30, count: 2 });
    expect(s.sync.outputBytes).toEqual({ min: 100, avg: 200, max: 300, count: 2 });
    // No usage sample: sync tasks have no CPU or memory figure at all, rather than zeros.
    expect(s.sync.cpuPercent.count).toBe(0);
    expect(s.async).toMatchObject({ tasks: 1, failed: 1 });
    expect(s.async.cpuPercent).toEqual({ min: 50, avg: 50, max: 50, count: 1 });
    expect(s.async.memoryBytes).toEqual({ min: 4096, avg: 4096, max: 4096, count: 1 });
  });

  it("leaves out tasks recovered as crashed, a deletion after the end, and tasks that never started from the figures", () => {
    const stats = createNodeStats({ startedAt: t0, now: () => t0 + 1000 });
    // Recovered at start-up: only its final event is ever seen.
    stats.record(event(status({ id: "old", state: TaskState.Crashed, startedAt: t0 - 5000 }), t0));
    life(stats, { id: "x", state: TaskState.Finished, stdoutSize: 7 }, t0 + 100, 5);
    stats.record(event(status({ id: "x", state: TaskState.Deleted }), t0 + 200));
    // Refused before start: counted as a failed task, but has no running time.
    stats.record(event(status({ id: "r" }), t0 + 300));
    stats.record(event(status({ id: "r", state: TaskState.NotSet, errorCode: 119 }), t0 + 300));
    const s = stats.snapshot();
    expect(s.sync).toMatchObject({ tasks: 2, failed: 1 });
    expect(s.sync.timeMs.count).toBe(1);
    expect(s.sync.outputBytes).toEqual({ min: 7, avg: 7, max: 7, count: 1 });
  });

  it("gives tasks per minute over the minutes since start: min over completed minutes, max including the current one", () => {
    let now = t0;
    const stats = createNodeStats({ startedAt: t0, now: () => now });
    let n = 0;
    const finishAt = (at: number): void => life(stats, { id: `m${n++}`, state: TaskState.Finished }, at);
    // Minute 0: three tasks; the first minute is the only one, so min = max = 3.
    for (const s of [1, 20, 59]) finishAt(t0 + s * 1000);
    now = t0 + 59_500;
    expect(stats.snapshot().sync.perMinute).toEqual({ min: 3, avg: 3, max: 3, count: 1 });
    // Minute 1: one task. Minute 2: none. Minute 3 (current): five tasks.
    finishAt(t0 + 61_000);
    for (let i = 0; i < 5; i++) finishAt(t0 + 185_000 + i);
    now = t0 + 210_000;
    const f = stats.snapshot().sync.perMinute;
    expect(f.min).toBe(0);
    expect(f.max).toBe(5);
    expect(f.count).toBe(4);
    expect(f.avg).toBeCloseTo(9 / 3.5, 5);
    // Async saw nothing: every figure zero, one (empty) minute observed.
    expect(stats.snapshot().async.perMinute.max).toBe(0);
  });

  it("does not inflate the average in the first minute", () => {
    let now = t0 + 1000;
    const stats = createNodeStats({ startedAt: t0, now: () => now });
    for (let i = 0; i < 10; i++) life(stats, { id: `b${i}`, state: TaskState.Finished }, t0 + 500);
    expect(stats.snapshot().sync.perMinute.avg).toBe(10);
    now = t0 + 120_000;
    expect(stats.snapshot().sync.perMinute).toMatchObject({ min: 0, max: 10, avg: 5 });
  });
});

describe("resetting the statistics (legacy RESET_STAT_COUNTERS)", () => {
  it("starts every figure again from zero and from now, still counting tasks that were running", () => {
    let now = t0;
    const stats = createNodeStats({ startedAt: t0, now: () => now });
    life(stats, { id: "done", state: TaskState.Finished, stdoutSize: 9 }, t0 + 100, 5);
    stats.record(event(status({ id: "running" }), t0 + 200));
    now = t0 + 1000;
    stats.reset();
    const cleared = stats.snapshot();
    expect(cleared.startedAt).toBe(t0 + 1000);
    expect(cleared.sync).toMatchObject({ tasks: 0, failed: 0 });
    expect(cleared.sync.outputBytes.count).toBe(0);
    stats.record(event(status({ id: "running", state: TaskState.Finished, startedAt: t0 + 200, finishedAt: t0 + 1500, stdoutSize: 3 }), t0 + 1500, 1300));
    expect(stats.snapshot().sync).toMatchObject({ tasks: 1, outputBytes: { min: 3, max: 3, count: 1 } });
  });
});
