import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { JournalError, openJournal, readSegment } from "../../src/store/journal.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function newDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "drce-journal-"));
  dirs.push(dir);
  return join(dir, "journal");
}

const text = (records: readonly Uint8Array[]): string[] => records.map((r) => Buffer.from(r).toString());
const segments = (dir: string): string[] => readdirSync(dir).filter((name) => /^\d+\.seg$/.test(name)).sort();

describe("the journal", () => {
  it("reads back every appended record in order after it is reopened", async () => {
    const dir = newDir();
    const first = openJournal({ dir });
    expect(first.replay()).toEqual([]);
    await Promise.all(["a", "bb", "ccc"].map((r) => first.append(Buffer.from(r))));
    await first.append(Buffer.from("dddd"));
    await first.close();
    const second = openJournal({ dir });
    expect(text(second.replay())).toEqual(["a", "bb", "ccc", "dddd"]);
    await second.append(Buffer.from("e"));
    await second.close();
    expect(text(openJournal({ dir }).replay())).toEqual(["a", "bb", "ccc", "dddd", "e"]);
  });

  it("makes a burst of appends durable with a few shared fdatasyncs, not one each", async () => {
    const journal = openJournal({ dir: newDir() });
    await Promise.all(Array.from({ length: 200 }, (_, i) => journal.append(Buffer.from(`record ${i}`))));
    // One turn of the event loop's appends share the first commit.
    expect(journal.commits).toBe(1);
    // Appends made while a commit runs wait for the next single one.
    const waves = Array.from({ length: 5 }, (_, wave) => Promise.all(Array.from({ length: 50 }, (_, i) => journal.append(Buffer.from(`w${wave}-${i}`)))));
    await Promise.all(waves);
    expect(journal.commits).toBeLessThanOrEqual(3);
    await journal.close();
  });

  it("spreads records over segments of the size asked for, in order, one of its own for a larger record", async () => {
    const dir = newDir();
    const journal = openJournal({ dir, segmentBytes: 4096 });
    const records = Array.from({ length: 100 }, (_, i) => `${i}`.padEnd(100, "."));
    for (const record of records) void journal.append(Buffer.from(record));
    const big = "x".repeat(10_000);
    await journal.append(Buffer.from(big));
    await journal.close();
    expect(segments(dir).length).toBeGreaterThanOrEqual(3);
    for (const name of segments(dir).slice(0, -1)) expect(statSync(join(dir, name)).size).toBe(4096);
    expect(text(openJournal({ dir, segmentBytes: 4096 }).replay())).toEqual([...records, big]);
  });

  it("ignores a torn tail: a record cut short is dropped, the ones before it are kept", async () => {
    const dir = newDir();
    const journal = openJournal({ dir, preallocate: false });
    for (const record of ["one", "two", "three"]) await journal.append(Buffer.from(record));
    await journal.close();
    const [name] = segments(dir);
    const path = join(dir, name!);
    truncateSync(path, statSync(path).size - 2);
    expect(text(openJournal({ dir }).replay())).toEqual(["one", "two"]);
  });

  it("ignores a corrupt record and everything after it in its segment, never misreading it", async () => {
    const dir = newDir();
    const journal = openJournal({ dir });
    for (const record of ["first", "second", "third"]) await journal.append(Buffer.from(record));
    await journal.close();
    const [name] = segments(dir);
    const path = join(dir, name!);
    const data = readFileSync(path);
    const at = data.indexOf("second");
    data[at] = "S".charCodeAt(0);
    writeFileSync(path, data);
    expect(text(openJournal({ dir }).replay())).toEqual(["first"]);
    // A length running past the end of the file is no record either.
    data.writeUInt32LE(0x7fffffff, at - 8);
    writeFileSync(path, data);
    expect(text(openJournal({ dir }).replay())).toEqual(["first"]);
    expect(readSegment(Buffer.from("not a segment at all"), 1).records).toEqual([]);
  });

  it("rejects an empty record, and appends after close", async () => {
    const journal = openJournal({ dir: newDir() });
    await expect(journal.append(new Uint8Array(0))).rejects.toThrow("cannot be empty");
    await journal.close();
    await expect(journal.append(Buffer.from("late"))).rejects.toThrow("the journal is closed");
  });

  it("retires the records appended before a checkpoint once its flush resolved, and keeps the later ones", async () => {
    const dir = newDir();
    const journal = openJournal({ dir, segmentBytes: 4096 });
    for (let i = 0; i < 60; i++) await journal.append(Buffer.from(`old ${i}`.padEnd(200, "-")));
    const before = journal.segmentCount;
    expect(before).toBeGreaterThan(1);
    let flushed = false;
    const done = journal.checkpoint(async () => {
      flushed = true;
    });
    // Appended after the call: kept, whatever the checkpoint does.
    const late = journal.append(Buffer.from("new"));
    await Promise.all([done, late]);
    expect(flushed).toBe(true);
    expect(journal.segmentCount).toBe(1);
    expect(journal.liveBytes).toBe(8 + 3);
    await journal.close();
    expect(text(openJournal({ dir, segmentBytes: 4096 }).replay())).toEqual(["new"]);
  });

  it("retires nothing when the flush fails, and the next checkpoint retires it all", async () => {
    const dir = newDir();
    const journal = openJournal({ dir });
    await journal.append(Buffer.from("kept"));
    await expect(journal.checkpoint(() => Promise.reject(new Error("disk gone")))).rejects.toThrow("disk gone");
    await journal.append(Buffer.from("later"));
    await journal.close();
    const reopened = openJournal({ dir });
    expect(text(reopened.replay())).toEqual(["kept", "later"]);
    await reopened.checkpoint(async () => undefined);
    await reopened.close();
    expect(text(openJournal({ dir }).replay())).toEqual([]);
  });

  it("reuses a retired segment's file without reading its old records back", async () => {
    const dir = newDir();
    const journal = openJournal({ dir, segmentBytes: 4096 });
    for (let i = 0; i < 30; i++) await journal.append(Buffer.from(`stale ${i}`.padEnd(100, "!")));
    await journal.checkpoint(async () => undefined);
    // Fill the segment made at the checkpoint, so that the next one is the spare, renamed.
    const fresh = Array.from({ length: 40 }, (_, i) => `fresh ${i}`.padEnd(150, "?"));
    for (const record of fresh) await journal.append(Buffer.from(record));
    await journal.close();
    expect(readdirSync(dir)).not.toContain("spare.seg");
    expect(text(openJournal({ dir, segmentBytes: 4096 }).replay())).toEqual(fresh);
  });
});

/** Runs the journal writer fixture until it printed `acks` durable records, then SIGKILLs it. */
async function killWriterAfter(dir: string, acks: number, mode = ""): Promise<number[]> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/journal-writer.mts", dir, mode], { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] });
  const acked: number[] = [];
  let pending = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the writer acknowledged ${acked.length} records in time`)), 60_000);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) acked.push(Number(line));
      if (acked.length >= acks && child.exitCode === null) {
        clearTimeout(timer);
        child.kill("SIGKILL");
      }
    });
    child.once("exit", (_code, signal) => {
      clearTimeout(timer);
      if (signal === "SIGKILL") resolve();
      else reject(new Error(`the writer exited by itself (${signal ?? _code})`));
    });
  });
  // Lines read after the kill was sent are acknowledgements too.
  return acked;
}

describe("the journal after its process is killed", { timeout: 90_000 }, () => {
  it("holds every acknowledged record, in order, with no gap and no half record", async () => {
    const dir = newDir();
    const acked = await killWriterAfter(dir, 400);
    const replayed = text(openJournal({ dir, segmentBytes: 4096 }).replay()).map(Number);
    expect(replayed.length).toBeGreaterThanOrEqual(acked.length);
    expect(replayed).toEqual(replayed.map((_, i) => i));
    for (const n of acked) expect(replayed).toContain(n);
  });

  it("after a kill during checkpoints, the flushed state and the records left cover every acknowledged record", async () => {
    const dir = newDir();
    const acked = await killWriterAfter(dir, 600, "checkpoint");
    const replayed = text(openJournal({ dir, segmentBytes: 4096 }).replay()).map(Number);
    let applied = -1;
    try {
      applied = Number(readFileSync(join(dir, "..", "applied"), "utf8"));
    } catch {
      // No checkpoint finished its flush before the kill: the journal holds everything.
    }
    // What a retired segment held is at or below the flushed number; the journal holds the rest.
    const first = replayed[0] ?? applied + 1;
    expect(first).toBeLessThanOrEqual(applied + 1);
    expect(replayed).toEqual(replayed.map((_, i) => first + i));
    for (const n of acked) expect(n <= applied || replayed.includes(n), `record ${n}`).toBe(true);
    expect(applied).toBeGreaterThan(0);
  });
});

describe("the journal on a small disk", () => {
  it("grows its segments instead of taking the disk's room with zeros, and reports a full disk as ENOSPC", async (context) => {
    const mountPoint = mkdtempSync(join(tmpdir(), "drce-journal-full-"));
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mountPoint], { stdio: "ignore" });
    } catch {
      rmSync(mountPoint, { recursive: true, force: true });
      if (process.env["CI"] === "true") throw new Error("mounting a tmpfs is not permitted here (needs root)");
      return context.skip();
    }
    try {
      const dir = join(mountPoint, "journal");
      const journal = openJournal({ dir, segmentBytes: 512 * 1024 });
      // No zeros: the disk is too small for eight segments' worth.
      expect(statSync(join(dir, segments(dir)[0]!)).size).toBe(16);
      await journal.append(Buffer.from("fits"));
      const filled: Promise<void>[] = [];
      for (let i = 0; i < 300; i++) filled.push(journal.append(Buffer.alloc(8192, 1)));
      const results = await Promise.allSettled(filled);
      const refused = results.find((result) => result.status === "rejected") as PromiseRejectedResult | undefined;
      expect(refused?.reason).toBeInstanceOf(JournalError);
      expect((refused?.reason as JournalError).code).toBe("ENOSPC");
      await journal.close();
      // What was acknowledged reads back whole, the refused records are not there.
      const replayed = openJournal({ dir, segmentBytes: 512 * 1024 }).replay();
      expect(Buffer.from(replayed[0]!).toString()).toBe("fits");
      expect(replayed.length).toBe(1 + results.filter((result) => result.status === "fulfilled").length);
    } finally {
      execFileSync("umount", [mountPoint], { stdio: "ignore" });
      rmSync(mountPoint, { recursive: true, force: true });
    }
  });
});
