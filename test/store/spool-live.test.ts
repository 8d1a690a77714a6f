import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OutputSpool } from "../../src/store/spool.js";
import { until } from "../helpers/node.js";

/*
 * A spool with an attached reader: past the head, every byte is queued for that reader, and a
 * write completes only once the reader has taken the queue (backpressure, not loss); the file
 * keeps head and tail as without one.
 */

const MiB = 1024 * 1024;
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "drce-spool-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("an attached spool", () => {
  it("holds a write past the head until the reader takes it, then hands over every byte at its offset", async () => {
    const spool = new OutputSpool(join(dir, "stdout"), 16);
    spool.attachLive();
    const data = Buffer.alloc(2 * MiB, 0x61);
    data.write("end", data.length - 3);
    let written = false;
    spool.write(data, () => (written = true));
    // The write has reached the spool (its bytes are counted) but waits for the reader.
    await until(() => spool.total, (total) => total === data.length, 10_000, "the write to reach the spool");
    expect(written).toBe(false);
    const piece = spool.takeLive()!;
    expect(piece.offset).toBe(8);
    expect(Buffer.compare(piece.data, data.subarray(8))).toBe(0);
    await until(() => written, (done) => done, 10_000, "the write to complete");
    spool.end();
    await finished(spool);
    await spool.finish();
    expect(spool.takeLive()).toBeUndefined();
    // The kept copy is head and tail, as without a reader.
    expect((await readFile(join(dir, "stdout"))).toString()).toBe(`aaaaaaaaaaaaaend`);
    expect(spool.truncated).toBe(true);
  });

  it("lets writes go on once the reader detaches, and keeps nothing queued for it", async () => {
    const spool = new OutputSpool(join(dir, "stdout"), 16);
    spool.attachLive();
    let written = false;
    spool.write(Buffer.alloc(2 * MiB, 1), () => (written = true));
    await until(() => spool.total, (total) => total === 2 * MiB, 10_000, "the write to reach the spool");
    spool.detachLive();
    await until(() => written, (done) => done, 10_000, "the write to complete");
    expect(spool.attached).toBe(false);
    expect(spool.takeLive()).toBeUndefined();
    spool.end();
    await finished(spool);
    await spool.finish();
  });

  it("wakes its reader at once when bytes wait for it, and no other subscriber", async () => {
    const spool = new OutputSpool(join(dir, "stdout"), 16);
    spool.attachLive();
    spool.write(Buffer.alloc(100, 2));
    await until(() => spool.total, (total) => total === 100, 10_000, "the write to reach the spool");
    let live = 0;
    let follower = 0;
    const offLive = spool.subscribe(() => live++, true);
    const offFollower = spool.subscribe(() => follower++);
    expect(live).toBe(1);
    expect(follower).toBe(0);
    offLive();
    offFollower();
    spool.detachLive();
    spool.end();
    await finished(spool);
    await spool.finish();
  });
});
