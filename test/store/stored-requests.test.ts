import { mkdtemp, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TaskState } from "../../src/domain/states.js";
import { createTaskStore } from "../../src/store/task-store.js";
import { testStatus } from "../helpers/status.js";

/*
 * A node keeps a stored task's status and reads its request when a call needs it: the store
 * loads only unfinished tasks' requests when told, and reads one request on demand.
 */

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "drce-stored-requests-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const request = (id: string) => ({ digest: `digest-${id}`, spec: { id, command: `echo ${id}` } as never });

describe("stored requests", () => {
  it("loads the requests of unfinished tasks only, when told, and every request by default", async () => {
    const store = await createTaskStore({ dataDir: dir });
    await store.create(request("done"), testStatus({ id: "done", state: TaskState.New }));
    await store.saveStatus(testStatus({ id: "done", state: TaskState.Finished, finishedAt: 2 }));
    await store.create(request("running"), testStatus({ id: "running", state: TaskState.InProgress }));
    const reopened = await createTaskStore({ dataDir: dir });
    const some = new Map((await reopened.load({ requests: "unfinished" })).map((task) => [task.status.id, task]));
    expect(some.get("done")?.status.state).toBe(TaskState.Finished);
    expect(some.get("done")?.request).toBeUndefined();
    expect(some.get("running")?.request).toEqual(request("running"));
    const all = new Map((await reopened.load()).map((task) => [task.status.id, task]));
    expect(all.get("done")?.request).toEqual(request("done"));
    expect(all.get("running")?.request).toEqual(request("running"));
  });

  it("reads one task's request on demand, and undefined when its file is missing or damaged", async () => {
    const store = await createTaskStore({ dataDir: dir });
    await store.create(request("a"), testStatus({ id: "a", state: TaskState.New }));
    await store.create(request("b"), testStatus({ id: "b", state: TaskState.New }));
    expect(store.readRequestNow("a")).toEqual(request("a"));
    await unlink(join(store.taskDir("a"), "request.json"));
    expect(store.readRequestNow("a")).toBeUndefined();
    await writeFile(join(store.taskDir("b"), "request.json"), "{ not json");
    expect(store.readRequestNow("b")).toBeUndefined();
    expect(store.readRequestNow("no-such-task")).toBeUndefined();
  });

  it("loads a finished status as it was written, its empty lists read-only", async () => {
    const store = await createTaskStore({ dataDir: dir });
    const written = testStatus({ id: "c", state: TaskState.Finished, finishedAt: 3, escapedPids: [41, 42] });
    await store.create(request("c"), testStatus({ id: "c", state: TaskState.New }));
    await store.saveStatus(written);
    const [loaded] = await (await createTaskStore({ dataDir: dir })).load({ requests: "unfinished" });
    expect(loaded?.status).toEqual(written);
    expect(Object.isFrozen(loaded?.status.files)).toBe(true);
    expect(Object.isFrozen(loaded?.status.escapedPids)).toBe(false);
  });

  it("loads a status larger than the buffer start-up reads through, whole", async () => {
    const store = await createTaskStore({ dataDir: dir });
    const subtaskIds = Array.from({ length: 8000 }, (_, i) => `subtask-${i}`);
    const written = testStatus({ id: "big", state: TaskState.Finished, finishedAt: 4, errorMessage: "é".repeat(40_000), subtaskIds });
    await store.create(request("big"), testStatus({ id: "big", state: TaskState.New }));
    await store.saveStatus(written);
    const [loaded] = await (await createTaskStore({ dataDir: dir })).load({ requests: "unfinished" });
    expect(loaded?.status).toEqual(written);
  });
});
