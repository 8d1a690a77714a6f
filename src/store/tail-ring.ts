import { closeSync, fdatasyncSync, openSync, readSync, rmSync, ftruncateSync, writeSync } from "node:fs";

/**
 * The header at the start of a spool's `.tail` ring file: what a node restarted after a
 * crash needs to put the ring's bytes back in order after the head. The ring itself starts
 * at {@link tailHeaderBytes}.
 *
 * A write to the ring first records `pendingTotal` (the stream's length once the write is
 * done), then writes, then records `committedTotal` equal to it. After a crash, ring bytes
 * of stream offsets from `committedTotal` to `pendingTotal` may be old or new, so they are
 * left out: what is merged is exactly what was written.
 */
export interface TailHeader {
  /** Bytes of the head, kept in the spool file itself. */
  readonly headBytes: number;
  /** Size of the ring. */
  readonly ringBytes: number;
  /** Stream bytes written for certain (head, gap and ring together). */
  readonly committedTotal: number;
  /** Stream bytes once the write under way is done (equal to committedTotal between writes). */
  readonly pendingTotal: number;
}

/** Bytes before the ring in a `.tail` file. */
export const tailHeaderBytes = 40;

const magic = Buffer.from("drcetail", "latin1");

/** Encodes a ring header. */
export function encodeTailHeader(header: TailHeader): Buffer {
  const buffer = Buffer.alloc(tailHeaderBytes);
  magic.copy(buffer, 0);
  buffer.writeBigUInt64LE(BigInt(header.headBytes), 8);
  buffer.writeBigUInt64LE(BigInt(header.ringBytes), 16);
  buffer.writeBigUInt64LE(BigInt(header.committedTotal), 24);
  buffer.writeBigUInt64LE(BigInt(header.pendingTotal), 32);
  return buffer;
}

/** Decodes a ring header; undefined when the bytes are not one (or not a consistent one). */
export function decodeTailHeader(buffer: Uint8Array): TailHeader | undefined {
  if (buffer.length < tailHeaderBytes || !magic.equals(buffer.subarray(0, magic.length))) return undefined;
  const view = Buffer.from(buffer.buffer, buffer.byteOffset, tailHeaderBytes);
  const read = (offset: number): number => Number(view.readBigUInt64LE(offset));
  const header = { headBytes: read(8), ringBytes: read(16), committedTotal: read(24), pendingTotal: read(32) };
  const consistent = header.ringBytes > 0 && header.committedTotal >= header.headBytes && header.pendingTotal >= header.committedTotal;
  return consistent ? header : undefined;
}

/** What {@link mergeCrashedTail} made of a spool left by a crash. */
export interface MergedTail {
  /** The stream's true length: every byte the command wrote for certain. */
  readonly total: number;
  /** Bytes now in the spool file: the head, then the last bytes of the stream that were kept. */
  readonly kept: number;
}

/**
 * Puts the tail ring of a spool left by a crash after its head, as a spool that finished
 * would have: the file becomes head + the last bytes written, in order, and is fdatasynced.
 * The `.tail` file stays until {@link removeTail} (after the task's final status is durable),
 * so a crash during recovery merges again from the start. Returns undefined when there is
 * no ring (the output stayed within its head), or none that can be read, which is removed.
 */
export function mergeCrashedTail(path: string): MergedTail | undefined {
  const tailPath = `${path}.tail`;
  let ring: number;
  try {
    ring = openSync(tailPath, "r");
  } catch {
    return undefined;
  }
  try {
    const raw = Buffer.alloc(tailHeaderBytes);
    const header = readSync(ring, raw, 0, tailHeaderBytes, 0) === tailHeaderBytes ? decodeTailHeader(raw) : undefined;
    if (header === undefined) {
      // A ring without its header cannot be put in order; serving it would mix bytes up.
      rmSync(tailPath, { force: true });
      return undefined;
    }
    const { headBytes, ringBytes, committedTotal, pendingTotal } = header;
    // Stream offsets whose ring bytes are certain: the last ringBytes before the pending end,
    // short of the ones the interrupted write may have half replaced.
    const from = Math.max(headBytes, pendingTotal - ringBytes);
    const to = committedTotal;
    const out = openSync(path, "r+");
    try {
      ftruncateSync(out, headBytes);
      const piece = Buffer.allocUnsafe(Math.min(Math.max(to - from, 1), 1024 * 1024));
      let written = headBytes;
      for (let offset = from; offset < to; ) {
        const at = (offset - headBytes) % ringBytes;
        const length = Math.min(piece.length, to - offset, ringBytes - at);
        const got = readSync(ring, piece, 0, length, tailHeaderBytes + at);
        if (got === 0) break;
        for (let done = 0; done < got; ) done += writeSync(out, piece, done, got - done, written + done);
        written += got;
        offset += got;
      }
      fdatasyncSync(out);
      return { total: committedTotal, kept: written };
    } finally {
      closeSync(out);
    }
  } finally {
    closeSync(ring);
  }
}

/** Removes a spool's `.tail` ring file, if there is one. */
export function removeTail(path: string): void {
  rmSync(`${path}.tail`, { force: true });
}
