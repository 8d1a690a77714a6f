import { existsSync } from "node:fs";
import { copyFile, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OutputSpool } from "../../src/store/spool.js";
import { decodeTailHeader, encodeTailHeader, mergeCrashedTail, removeTail, tailHeaderBytes } from "../../src/store/tail-ring.js";

/*
 * The tail ring of an output spool, as a node that died while a task wrote past its cap
 * leaves it: copies of the spool's files taken mid-stream are what a crash leaves on disk
 * (the page cache keeps what the node wrote), and merging them must give exactly what a
 * spool that finished gives for the same bytes.
 */

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "drce-tail-test-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Bytes that tell every offset apart: the decimal counters 1, 2, 3, ... one a line. */
function counters(count: number, from = 1): Buffer {
  return Buffer.from(Array.from({ length: count }, (_, i) => `${from + i}\n`).join(""));
}

async function write(spool: OutputSpool, data: Buffer, chunk = 8192): Promise<void> {
  for (let offset = 0; offset < data.length; offset += chunk) {
    if (!spool.write(data.subarray(offset, offset + chunk))) await new Promise((resolve) => spool.once("drain", resolve));
  }
  // Every write has reached the files once the spool has nothing buffered.
  while (spool.writableLength > 0) await new Promise((resolve) => setImmediate(resolve));
}

describe("a crashed spool's tail ring", () => {
  it("merges into head + the last bytes, in order, as the spool would have finished (the ring wrapped several times)", async () => {
    const cap = 64 * 1024;
    const spool = new OutputSpool(join(dir, "stdout"), cap);
    const data = counters(60_000);
    await write(spool, data, 5000);
    // The crash: what is on disk now, before the spool stitches anything.
    await copyFile(join(dir, "stdout"), join(dir, "crashed"));
    await copyFile(join(dir, "stdout.tail"), join(dir, "crashed.tail"));
    spool.end();
    await new Promise((resolve) => spool.once("finish", resolve));
    await spool.finish();

    const merged = mergeCrashedTail(join(dir, "crashed"));
    expect(merged).toEqual({ total: data.length, kept: cap });
    const finished = await readFile(join(dir, "stdout"));
    expect(finished.equals(Buffer.concat([data.subarray(0, cap / 2), data.subarray(data.length - cap / 2)]))).toBe(true);
    expect((await readFile(join(dir, "crashed"))).equals(finished)).toBe(true);
    // The ring stays until the caller's status is durable; merging again gives the same file.
    expect(existsSync(join(dir, "crashed.tail"))).toBe(true);
    expect(mergeCrashedTail(join(dir, "crashed"))).toEqual(merged);
    expect((await readFile(join(dir, "crashed"))).equals(finished)).toBe(true);
    removeTail(join(dir, "crashed"));
    expect(existsSync(join(dir, "crashed.tail"))).toBe(false);
  });

  it("merges a ring that had not wrapped yet: head + every byte past it", async () => {
    const cap = 64 * 1024;
    const spool = new OutputSpool(join(dir, "stdout"), cap);
    const data = counters(7000);
    expect(data.length).toBeGreaterThan(cap / 2);
    expect(data.length).toBeLessThan(cap);
    await write(spool, data);
    expect(mergeCrashedTail(join(dir, "stdout"))).toEqual({ total: data.length, kept: data.length });
    expect((await readFile(join(dir, "stdout"))).equals(data)).toBe(true);
    spool.destroy();
  });

  it("leaves out the ring bytes a write under way when the node died may have half replaced", async () => {
    const head = Buffer.alloc(100, "h");
    await writeFile(join(dir, "out"), head);
    // A ring of 50 bytes holding stream offsets 100..250 last; a write of offsets 250..270 had
    // begun (pending 270): ring positions of 250..270 hold some new and some old bytes.
    const ring = Buffer.alloc(50);
    const streamByte = (offset: number): number => 33 + (offset % 90);
    for (let offset = 200; offset < 250; offset++) ring[(offset - 100) % 50] = streamByte(offset);
    for (let offset = 250; offset < 260; offset++) ring[(offset - 100) % 50] = 0; // half of the new write landed
    const header = encodeTailHeader({ headBytes: 100, ringBytes: 50, committedTotal: 250, pendingTotal: 270 });
    await writeFile(join(dir, "out.tail"), Buffer.concat([header, ring]));

    expect(mergeCrashedTail(join(dir, "out"))).toEqual({ total: 250, kept: 130 });
    const expected = Buffer.concat([head, Buffer.from(Array.from({ length: 30 }, (_, i) => streamByte(220 + i)))]);
    expect((await readFile(join(dir, "out"))).equals(expected)).toBe(true);
  });

  it("keeps the head alone and removes a ring it cannot put in order (no header)", async () => {
    await writeFile(join(dir, "out"), "head");
    await writeFile(join(dir, "out.tail"), Buffer.alloc(tailHeaderBytes + 10, 7));
    expect(mergeCrashedTail(join(dir, "out"))).toBeUndefined();
    expect(await readFile(join(dir, "out"), "utf8")).toBe("head");
    expect(existsSync(join(dir, "out.tail"))).toBe(false);
    // No ring at all: nothing to do.
    expect(mergeCrashedTail(join(dir, "out"))).toBeUndefined();
  });

  it("encodes and decodes its header, refusing inconsistent ones", async () => {
    const header = { headBytes: 134_217_728, ringBytes: 134_217_728, committedTotal: 5_000_000_000, pendingTotal: 5_000_065_536 };
    expect(decodeTailHeader(encodeTailHeader(header))).toEqual(header);
    expect(decodeTailHeader(encodeTailHeader({ ...header, pendingTotal: header.committedTotal - 1 }))).toBeUndefined();
    expect(decodeTailHeader(encodeTailHeader({ ...header, ringBytes: 0 }))).toBeUndefined();
    expect(decodeTailHeader(Buffer.alloc(tailHeaderBytes))).toBeUndefined();
    // The spool writes it at the start of its ring file.
    const spool = new OutputSpool(join(dir, "stdout"), 1000);
    await write(spool, counters(400), 100);
    const handle = await open(join(dir, "stdout.tail"), "r");
    const raw = Buffer.alloc(tailHeaderBytes);
    await handle.read(raw, 0, tailHeaderBytes, 0);
    await handle.close();
    expect(decodeTailHeader(raw)).toEqual({ headBytes: 500, ringBytes: 500, committedTotal: counters(400).length, pendingTotal: counters(400).length });
    spool.destroy();
  });
});
