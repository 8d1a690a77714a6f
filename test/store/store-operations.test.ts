import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createTaskStore, type TaskStore } from "../../src/store/task-store.js";
import { TaskState } from "../../src/domain/states.js";
import { testStatus } from "../helpers/status.js";

let dir: string;
let store: TaskStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "drce-store-ops-"));
  store = await createTaskStore({ dataDir: dir });
  await store.create({ digest: "d", spec: {} as never }, testStatus({ id: "t", state: TaskState.New }));
});
afterEach(async () => {
  store.close();
  await rm(dir, { recursive: true, force: true });
});

describe("the store's own files, through its operations", () => {
  it("keeps what a spool it made was written, and opens it for reading", async () => {
    const spool = store.createSpool("t", "stdout", 0);
    spool.end(Buffer.from("kept bytes\n"));
    await finished(spool);
    await spool.finish();
    const kept = await store.openOutput("t", "stdout");
    try {
      expect(kept.size).toBe(11);
      expect(Buffer.from(await kept.read(5, 100)).toString()).toBe("bytes\n");
    } finally {
      await kept.close();
    }
    const partial = await store.openOutput("t", "stdout", 4);
    expect(Buffer.from(await partial.read(0, 100)).toString()).toBe("kept");
    await partial.close();
  });

  it("opens a stream that wrote nothing as empty", async () => {
    const kept = await store.openOutput("t", "stderr");
    expect(kept.size).toBe(0);
    expect(await kept.read(0, 10)).toHaveLength(0);
  });

  it("reads back the returned files a status lists, one it cannot read as empty", async () => {
    await store.writeResultFile("t", 0, Buffer.from("first"));
    const status = testStatus({ id: "t", files: [{ name: "a.txt", action: 4 }, { name: "b.txt", action: 4 }] });
    const files = await store.readResultFiles(status);
    expect(files.map((file) => [file.name, Buffer.from(file.data).toString()])).toEqual([
      ["a.txt", "first"],
      ["b.txt", ""],
    ]);
  });

  it("tells when a status was written, and zero for a task that is gone", async () => {
    const before = Date.now();
    await store.saveStatus(testStatus({ id: "t", state: TaskState.Queued }));
    const at = await store.statusWrittenAt("t");
    // File times may be coarser than Date.now(): a second's slack either way.
    expect(Math.abs(at - before)).toBeLessThan(1000);
    await store.remove("t");
    expect(await store.statusWrittenAt("t")).toBe(0);
  });
});
