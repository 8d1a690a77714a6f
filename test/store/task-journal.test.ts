import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TaskState } from "../../src/domain/states.js";
import { encodeTaskRecord, foldTaskRecords } from "../../src/store/task-journal.js";
import { createTaskStore } from "../../src/store/task-store.js";
import { testStatus } from "../helpers/status.js";

/*
 * The journaled store: what a crash of the OS before a checkpoint would leave (a task
 * directory holding an older status, a damaged one, none at all, a deleted task's directory
 * back) is mended at start-up from the journal, which is then checkpointed.
 */

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function newDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "drce-task-journal-"));
  dirs.push(dir);
  return dir;
}
const request = (id: string) => ({ digest: `digest-${id}`, spec: { id, command: `echo ${id}` } as never });
const segments = (dataDir: string): string[] => readdirSync(join(dataDir, "journal")).filter((name) => /^\d+\.seg$/.test(name));
const statusOnDisk = (dataDir: string, id: string): { state: number } => JSON.parse(readFileSync(join(dataDir, "tasks", id, "status.json"), "utf8")) as { state: number };

describe("the journaled task store", () => {
  it("keeps the directory layout as it writes, and loads every task back with its request", async () => {
    const dataDir = newDataDir();
    const store = await createTaskStore({ dataDir, journal: true });
    await store.create(request("a"), testStatus({ id: "a", state: TaskState.New }));
    await store.saveStatus(testStatus({ id: "a", state: TaskState.InProgress, pid: 12 }));
    await store.saveStatus(testStatus({ id: "a", state: TaskState.Finished, finishedAt: 5 }));
    await store.create(request("b"), testStatus({ id: "b", state: TaskState.New }));
    // What readers and a restarted process find, before any checkpoint.
    expect(statusOnDisk(dataDir, "a").state).toBe(TaskState.Finished);
    expect(store.readRequestNow("a")).toEqual(request("a"));
    expect(await store.statusWrittenAt("a")).toBeGreaterThan(0);
    expect(existsSync(store.workDir("b"))).toBe(true);
    expect(readdirSync(store.taskDir("a")).filter((name) => name.endsWith(".tmp"))).toEqual([]);
    const reopened = await createTaskStore({ dataDir, journal: true });
    const loaded = new Map((await reopened.load()).map((task) => [task.status.id, task]));
    expect(loaded.get("a")?.status.state).toBe(TaskState.Finished);
    expect(loaded.get("a")?.request).toEqual(request("a"));
    expect(loaded.get("b")?.status.state).toBe(TaskState.New);
    // The load checkpointed what it replayed: one segment is left, the new one.
    expect(segments(dataDir)).toHaveLength(1);
    store.close();
    reopened.close();
  });

  it("puts back a status and a request the directory lost, from the journal", async () => {
    const dataDir = newDataDir();
    const store = await createTaskStore({ dataDir, journal: true });
    await store.create(request("lost"), testStatus({ id: "lost", state: TaskState.New }));
    await store.saveStatus(testStatus({ id: "lost", state: TaskState.Finished, exitStatus: 3 }));
    await store.create(request("torn"), testStatus({ id: "torn", state: TaskState.New }));
    await store.create(request("gone"), testStatus({ id: "gone", state: TaskState.New }));
    await store.saveStatus(testStatus({ id: "gone", state: TaskState.InProgress, pid: 7 }));
    store.close();
    // As a crash of the OS before a checkpoint may leave them: an older status, no request;
    // an empty status; no directory at all.
    writeFileSync(join(dataDir, "tasks", "lost", "status.json"), JSON.stringify(testStatus({ id: "lost", state: TaskState.New })));
    rmSync(join(dataDir, "tasks", "lost", "request.json"));
    writeFileSync(join(dataDir, "tasks", "torn", "status.json"), "");
    rmSync(join(dataDir, "tasks", "gone"), { recursive: true });
    const reopened = await createTaskStore({ dataDir, journal: true });
    const loaded = new Map((await reopened.load({ requests: "unfinished" })).map((task) => [task.status.id, task]));
    expect(loaded.get("lost")?.status.state).toBe(TaskState.Finished);
    expect(loaded.get("lost")?.status.exitStatus).toBe(3);
    expect(loaded.get("lost")?.request).toBeUndefined();
    expect(loaded.get("torn")?.status.state).toBe(TaskState.New);
    expect(loaded.get("torn")?.request).toEqual(request("torn"));
    expect(loaded.get("gone")?.status.state).toBe(TaskState.InProgress);
    expect(loaded.get("gone")?.request).toEqual(request("gone"));
    // Mended on disk too.
    expect(statusOnDisk(dataDir, "lost").state).toBe(TaskState.Finished);
    expect(reopened.readRequestNow("lost")).toEqual(request("lost"));
    expect(statusOnDisk(dataDir, "torn").state).toBe(TaskState.New);
    expect(statusOnDisk(dataDir, "gone").state).toBe(TaskState.InProgress);
    expect(existsSync(reopened.workDir("gone"))).toBe(true);
    reopened.close();
  });

  it("never brings a deleted task back, even when its directory outlived the deletion", async () => {
    const dataDir = newDataDir();
    const store = await createTaskStore({ dataDir, journal: true });
    await store.create(request("x"), testStatus({ id: "x", state: TaskState.New }));
    await store.saveStatus(testStatus({ id: "x", state: TaskState.Finished }));
    await store.remove("x");
    expect(existsSync(store.taskDir("x"))).toBe(false);
    store.close();
    // The removal lost (a crash of the OS before it was durable): the directory is back.
    mkdirSync(join(dataDir, "tasks", "x"));
    writeFileSync(join(dataDir, "tasks", "x", "status.json"), JSON.stringify(testStatus({ id: "x", state: TaskState.Finished })));
    const reopened = await createTaskStore({ dataDir, journal: true });
    expect((await reopened.load()).map((task) => task.status.id)).toEqual([]);
    expect(existsSync(join(dataDir, "tasks", "x"))).toBe(false);
    reopened.close();
  });

  it("removes a directory no acknowledged record names, as the per-file store does", async () => {
    const dataDir = newDataDir();
    const store = await createTaskStore({ dataDir, journal: true });
    await store.load();
    mkdirSync(join(dataDir, "tasks", "half"), { recursive: true });
    writeFileSync(join(dataDir, "tasks", "half", "status.json"), "{\"id\":");
    const reopened = await createTaskStore({ dataDir, journal: true });
    expect(await reopened.load()).toEqual([]);
    expect(existsSync(join(dataDir, "tasks", "half"))).toBe(false);
    store.close();
    reopened.close();
  });

  it("loads what is before a torn journal tail, and ignores the tail", async () => {
    const dataDir = newDataDir();
    const store = await createTaskStore({ dataDir, journal: true });
    await store.create(request("t"), testStatus({ id: "t", state: TaskState.New }));
    await store.saveStatus(testStatus({ id: "t", state: TaskState.InProgress, pid: 9 }));
    store.close();
    rmSync(join(dataDir, "tasks", "t"), { recursive: true });
    // Garbage where the next frame would go: a length and half a record.
    const [segment] = segments(dataDir);
    const path = join(dataDir, "journal", segment!);
    const data = readFileSync(path);
    const end = data.indexOf(Buffer.alloc(16), 16);
    data.writeUInt32LE(500, end);
    data.write("{\"kind\":\"status\",\"status\":{\"id\":\"t\"", end + 8);
    writeFileSync(path, data);
    const reopened = await createTaskStore({ dataDir, journal: true });
    const [task] = await reopened.load();
    expect(task?.status.state).toBe(TaskState.InProgress);
    expect(task?.status.pid).toBe(9);
    expect(statSync(join(dataDir, "tasks", "t", "status.json")).size).toBeGreaterThan(0);
    reopened.close();
  });

  it("reports crashed a journaled end whose output is shorter on disk than it states, and keeps an end whose output is whole", async () => {
    const dataDir = newDataDir();
    const store = await createTaskStore({ dataDir, journal: true });
    for (const id of ["short", "whole"]) {
      await store.create(request(id), testStatus({ id, state: TaskState.New }));
      writeFileSync(store.outputPath(id, "stdout"), "0123456789");
      await store.saveStatus(testStatus({ id, state: TaskState.Finished, stdoutSize: 10 }));
    }
    store.close();
    // As a crash of the OS may leave it: the record durable, the output's fsync not done.
    writeFileSync(join(dataDir, "tasks", "short", "stdout"), "0123");
    const reopened = await createTaskStore({ dataDir, journal: true });
    const loaded = new Map((await reopened.load()).map((task) => [task.status.id, task.status]));
    expect(loaded.get("short")).toMatchObject({ state: TaskState.Crashed, errorCode: 107, stdoutSize: 4 });
    expect(loaded.get("short")?.errorMessage).toMatch(/output was durable/);
    expect(statusOnDisk(dataDir, "short").state).toBe(TaskState.Crashed);
    expect(loaded.get("whole")).toMatchObject({ state: TaskState.Finished, stdoutSize: 10 });
    reopened.close();
  });

  it("folds records into each task's last state, its request kept from its acceptance", () => {
    const records = [
      encodeTaskRecord({ kind: "accepted", request: request("r"), status: testStatus({ id: "r", state: TaskState.New }) }),
      encodeTaskRecord({ kind: "status", status: testStatus({ id: "r", state: TaskState.Finished }) }),
      encodeTaskRecord({ kind: "accepted", request: request("d"), status: testStatus({ id: "d", state: TaskState.New }) }),
      encodeTaskRecord({ kind: "deleted", id: "d" }),
      Buffer.from("not json"),
    ];
    const folded = foldTaskRecords(records);
    expect(folded.get("r")).toMatchObject({ deleted: false, request: request("r"), status: { state: TaskState.Finished } });
    expect(folded.get("d")).toEqual({ deleted: true });
    expect(folded.size).toBe(2);
  });
});
