import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OutputSpool } from "../../src/store/spool.js";
import { until } from "../helpers/node.js";

/*
 * A spool whose attached reader is fed from the first byte: each piece is queued for it as
 * it reaches the file, so the reader never reads the file back while it keeps up. One that
 * falls more than liveLagBytes behind in the head is left to the file (complete there) and
 * fed again once it has caught up; writes are accepted ahead of the file, bounded.
 */

const MiB = 1024 * 1024;
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "drce-spool-feed-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Bytes that tell every offset apart. */
const counters = (from: number, count: number): Buffer => Buffer.from(Array.from({ length: count }, (_, i) => `${from + i}\n`).join(""));

describe("a spool attached from the start", () => {
  it("queues the head for its reader as it is written, at its offsets", async () => {
    const spool = new OutputSpool(join(dir, "stdout"));
    spool.attachLive(true);
    expect(spool.rejoinLive(0)).toBe(true);
    const first = counters(1, 1000);
    const second = counters(1001, 1000);
    spool.write(first);
    spool.write(second);
    await until(() => spool.total, (total) => total === first.length + second.length, 10_000, "the writes to reach the file");
    const piece = spool.takeLive()!;
    expect(piece.offset).toBe(0);
    expect(piece.data.equals(Buffer.concat([first, second]))).toBe(true);
    expect(spool.takeLive()).toBeUndefined();
    expect(spool.rejoinLive(first.length + second.length)).toBe(true);
    spool.end();
    await finished(spool);
    await spool.finish();
    expect((await readFile(join(dir, "stdout"))).equals(Buffer.concat([first, second]))).toBe(true);
  });

  it("leaves a reader that fell behind to the file, never slowing the writer, and feeds it again once it caught up", async () => {
    const spool = new OutputSpool(join(dir, "stdout"));
    spool.attachLive(true);
    const lag = OutputSpool.liveLagBytes;
    const data = Buffer.alloc(lag + 4 * MiB, 0x62);
    let accepted = false;
    spool.write(data, () => (accepted = true));
    // Nobody takes the queue; the writes go on to the file regardless.
    await until(() => accepted && spool.writableLength === 0, (done) => done, 10_000, "the write to reach the file");
    expect(spool.total).toBe(data.length);
    // What was queued before the reader lagged is its, from offset 0, at most the bound.
    let position = 0;
    for (let piece = spool.takeLive(); piece !== undefined; piece = spool.takeLive()) {
      expect(piece.offset).toBe(position);
      position += piece.data.length;
    }
    expect(position).toBeGreaterThan(0);
    expect(position).toBeLessThanOrEqual(lag);
    // The rest is in the file only: the reader is not fed it, and cannot rejoin before it has read it.
    expect(spool.rejoinLive(position)).toBe(false);
    expect(spool.available).toBe(data.length);
    // Once it has read the file to the end it is fed again from there.
    expect(spool.rejoinLive(data.length)).toBe(true);
    const more = counters(1, 100);
    spool.write(more);
    await until(() => spool.total, (total) => total === data.length + more.length, 10_000, "the next write to reach the file");
    const piece = spool.takeLive()!;
    expect(piece.offset).toBe(data.length);
    expect(piece.data.equals(more)).toBe(true);
    spool.end();
    await finished(spool);
    await spool.finish();
  });

  it("accepts writes ahead of the file up to writeAheadBytes, and has every byte in the file once it ends", async () => {
    const spool = new OutputSpool(join(dir, "stdout"));
    const chunks = Array.from({ length: 64 }, (_, i) => counters(i * 10_000, 10_000));
    for (const chunk of chunks) if (!spool.write(chunk)) await new Promise((resolve) => spool.once("drain", resolve));
    expect(spool.writableLength).toBeLessThanOrEqual(OutputSpool.writeAheadBytes + 256 * 1024 + chunks[0]!.length);
    spool.end();
    await finished(spool);
    expect(spool.writableLength).toBe(0);
    await spool.finish();
    expect((await readFile(join(dir, "stdout"))).equals(Buffer.concat(chunks))).toBe(true);
  });
});
