import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createDirSyncGroup, writeFileAtomic, writeFilesAtomic } from "../../src/store/atomic.js";
import { OutputSpool } from "../../src/store/spool.js";
import { createTaskStore } from "../../src/store/task-store.js";
import { TaskState } from "../../src/domain/states.js";
import type { TaskStatus } from "../../src/domain/task.js";
import { testStatus } from "../helpers/status.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "drce-store-test-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A sync function that counts its calls and finishes only when told to. */
function controlledSync(): { sync: (dir: string) => Promise<void>; calls: string[]; finishAll: () => void } {
  const calls: string[] = [];
  const pending: (() => void)[] = [];
  return {
    calls,
    sync: (target) => {
      calls.push(target);
      return new Promise<void>((resolve) => pending.push(resolve));
    },
    finishAll: () => {
      for (const resolve of pending.splice(0)) resolve();
    },
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("createDirSyncGroup", () => {
  it("shares one fsync among callers that arrive while another runs", async () => {
    const control = controlledSync();
    const syncDir = createDirSyncGroup(control.sync);
    let firstDone = false;
    const first = syncDir("/d").then(() => (firstDone = true));
    await tick();
    expect(control.calls).toEqual(["/d"]);
    // Ten callers arrive while the first fsync runs: they all wait for one more.
    let laterDone = 0;
    const later = Array.from({ length: 10 }, () => syncDir("/d").then(() => laterDone++));
    await tick();
    expect(control.calls).toEqual(["/d"]);
    control.finishAll();
    await first;
    expect(firstDone).toBe(true);
    expect(laterDone).toBe(0); // their renames may postdate the first fsync
    await tick();
    expect(control.calls).toEqual(["/d", "/d"]);
    control.finishAll();
    await Promise.all(later);
    expect(laterDone).toBe(10);
    // Idle again: the next caller starts a fresh fsync of its own.
    const again = syncDir("/d");
    await tick();
    expect(control.calls).toEqual(["/d", "/d", "/d"]);
    control.finishAll();
    await again;
  });

  it("keeps directories apart and passes a failure to the callers of that fsync", async () => {
    const calls: string[] = [];
    const syncDir = createDirSyncGroup(async (target) => {
      calls.push(target);
      if (target === "/bad") throw Object.assign(new Error("EIO"), { code: "EIO" });
    });
    await expect(syncDir("/bad")).rejects.toThrow("EIO");
    await syncDir("/good");
    expect(calls).toEqual(["/bad", "/good"]);
  });
});

describe("writeFileAtomic", () => {
  it("replaces a file whole, durable or not, and leaves no temp file behind", async () => {
    const path = join(dir, "status.json");
    await writeFile(path, JSON.stringify({ long: "x".repeat(1000) }));
    await writeFileAtomic(path, JSON.stringify({ a: 1 }), { durable: false });
    expect(JSON.parse(await readFile(path, "utf8"))).toEqual({ a: 1 });
    const synced: string[] = [];
    await writeFileAtomic(path, JSON.stringify({ a: 2 }), { syncDir: async (d) => void synced.push(d) });
    expect(JSON.parse(await readFile(path, "utf8"))).toEqual({ a: 2 });
    expect(synced).toEqual([dir]);
    expect(await readdir(dir)).toEqual(["status.json"]);
  });

  it("fails with the error of a missing directory and creates nothing", async () => {
    await expect(writeFileAtomic(join(dir, "missing", "status.json"), "{}")).rejects.toMatchObject({ code: "ENOENT" });
    expect(await readdir(dir)).toEqual([]);
  });
});

describe("writeFilesAtomic", () => {
  it("writes every file, each directory fsynced once, nothing left behind", async () => {
    await mkdir(join(dir, "sub"));
    const synced: string[] = [];
    const files = [
      { path: join(dir, "request.json"), data: "{\"r\":1}" },
      { path: join(dir, "status.json"), data: "{\"s\":1}" },
      { path: join(dir, "sub", "other.json"), data: new Uint8Array([123, 125]) },
    ];
    await writeFilesAtomic(files, { syncDir: async (d) => void synced.push(d) });
    expect(await readFile(join(dir, "request.json"), "utf8")).toBe('{"r":1}');
    expect(await readFile(join(dir, "status.json"), "utf8")).toBe('{"s":1}');
    expect(await readFile(join(dir, "sub", "other.json"), "utf8")).toBe("{}");
    expect(synced.sort()).toEqual([dir, join(dir, "sub")]);
    expect((await readdir(dir)).sort()).toEqual(["request.json", "status.json", "sub"]);
  });

  it("renames nothing when one file cannot be written, and removes the temp files", async () => {
    await writeFile(join(dir, "request.json"), "old");
    const files = [
      { path: join(dir, "request.json"), data: "new" },
      { path: join(dir, "missing", "status.json"), data: "{}" },
    ];
    await expect(writeFilesAtomic(files)).rejects.toMatchObject({ code: "ENOENT" });
    expect(await readFile(join(dir, "request.json"), "utf8")).toBe("old");
    expect(await readdir(dir)).toEqual(["request.json"]);
  });
});

describe("OutputSpool", () => {
  it("flushes a large output to disk as it comes, and ends with every byte in order", async () => {
    const saved = OutputSpool.flushEveryBytes;
    OutputSpool.flushEveryBytes = 64 * 1024;
    try {
      // A cap, so that the tail ring is flushed and stitched too.
      const spool = new OutputSpool(join(dir, "stdout"), 512 * 1024);
      const chunks = Array.from({ length: 48 }, (_, i) => Buffer.alloc(32 * 1024, i));
      for (const chunk of chunks) {
        if (!spool.write(chunk)) await new Promise((resolve) => spool.once("drain", resolve));
      }
      spool.end();
      await new Promise((resolve) => spool.once("finish", resolve));
      await spool.finish();
      // One flush at least; a second starts only once the first is done, which a slow disk may
      // not allow before the last write.
      expect(spool.flushes).toBeGreaterThanOrEqual(1);
      const all = Buffer.concat(chunks);
      const expected = Buffer.concat([all.subarray(0, 256 * 1024), all.subarray(all.length - 256 * 1024)]);
      expect(spool.truncated).toBe(true);
      expect((await readFile(join(dir, "stdout"))).equals(expected)).toBe(true);
    } finally {
      OutputSpool.flushEveryBytes = saved;
    }
  });
});

describe("OutputSpool without output", () => {
  it("creates no file for a stream nothing was written to, and the store reads it as empty", async () => {
    const store = await createTaskStore({ dataDir: join(dir, "lazy") });
    await store.create({ digest: "d", spec: { id: "quiet" } as never }, status("quiet", TaskState.New));
    const spool = new OutputSpool(store.outputPath("quiet", "stderr"));
    spool.end();
    await new Promise((resolve) => spool.once("finish", resolve));
    await spool.finish();
    expect(spool.complete).toBe(true);
    expect(spool.available).toBe(0);
    await expect(stat(store.outputPath("quiet", "stderr"))).rejects.toMatchObject({ code: "ENOENT" });
    expect((await store.readOutput("quiet", "stderr")).length).toBe(0);
    expect(await store.outputSize("quiet", "stderr")).toBe(0);
    // A final status is durable without it.
    await store.saveStatus({ ...status("quiet", TaskState.Finished), stderrSize: 0 }, "final");
  });
});

function status(id: string, state: TaskState): TaskStatus {
  return testStatus({ id, state, submittedAt: 1, command: "true" });
}

describe("task store durability", () => {
  it("a task created without durability is complete on disk and loads back after its final write", async () => {
    const store = await createTaskStore({ dataDir: dir });
    const request = { digest: "d1", spec: { id: "t1" } as never };
    await store.create(request, status("t1", TaskState.New), false);
    // Atomic even when not fsynced: a reader (a restarted node) sees whole files.
    expect(JSON.parse(await readFile(join(store.taskDir("t1"), "status.json"), "utf8")).state).toBe(TaskState.New);
    await store.saveStatus({ ...status("t1", TaskState.InProgress), pid: 42 }, "spawned", false);
    await writeFile(store.outputPath("t1", "stdout"), "out\n");
    await store.saveStatus({ ...status("t1", TaskState.Finished), stdoutSize: 4 }, "final");
    const loaded = await (await createTaskStore({ dataDir: dir })).load();
    expect(loaded).toHaveLength(1);
    expect(loaded[0]!.status.state).toBe(TaskState.Finished);
    expect(loaded[0]!.request).toEqual(request);
    expect((await store.readOutput("t1", "stdout")).toString()).toBe("out\n");
    expect((await readdir(store.taskDir("t1"))).filter((name) => name.endsWith(".tmp"))).toEqual([]);
  });

  it("reads large outputs as well as small ones", async () => {
    const store = await createTaskStore({ dataDir: dir });
    await store.create({ digest: "d", spec: { id: "big" } as never }, status("big", TaskState.New));
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    await writeFile(store.outputPath("big", "stdout"), big);
    expect((await store.readOutput("big", "stdout")).equals(big)).toBe(true);
    expect((await store.readOutput("big", "stderr")).length).toBe(0);
  });
});
