import { closeSync, openSync, readSync } from "node:fs";
import { crc32 } from "node:zlib";

// The on-disk format of a journal segment: a 16-byte header (magic, segment number), then
// frames of a length, a CRC-32 seeded with the segment's number, and the record.

/** The bytes every segment file begins with. */
export const magic = Buffer.from("DRCEJNL1");
/** A segment's header: the magic, then the segment's number. */
export const headerBytes = 16;
/** A frame's own bytes before its record: the record's length, then its checksum. */
export const frameBytes = 8;
/** A frame whose length field is larger than this is taken as garbage, not as a record. */
export const maxRecordBytes = 256 * 1024 * 1024;
/** The name of a numbered segment file. */
export const segmentPattern = /^(\d{12})\.seg$/;
/** The name of a retired segment kept to be reused. */
export const spareName = "spare.seg";

/** The file name of segment `sequence`. */
export function segmentName(sequence: number): string {
  return `${String(sequence).padStart(12, "0")}.seg`;
}

/** The 8 bytes of a segment's number that every one of its frames' checksums starts from. */
export function sequenceBytes(sequence: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(BigInt(sequence));
  return bytes;
}

/** Reads a whole file synchronously (a segment, at open, when nothing else runs yet). */
export function readWhole(path: string): Buffer {
  const fd = openSync(path, "r");
  try {
    const chunks: Buffer[] = [];
    for (;;) {
      const chunk = Buffer.allocUnsafe(1024 * 1024);
      const bytes = readSync(fd, chunk, 0, chunk.length, null);
      if (bytes === 0) break;
      chunks.push(chunk.subarray(0, bytes));
    }
    return Buffer.concat(chunks);
  } finally {
    closeSync(fd);
  }
}

/**
 * The records of one segment file, in order, up to its first frame that is not whole and
 * valid: zeros (the unwritten rest of a preallocated segment), a torn write, or a stale
 * frame of the segment's previous life (its checksum was made from another number).
 */
export function readSegment(data: Buffer, sequence: number): { records: Uint8Array[]; bytes: number } {
  const records: Uint8Array[] = [];
  if (data.length < headerBytes || !data.subarray(0, magic.length).equals(magic) || data.readBigUInt64LE(8) !== BigInt(sequence)) return { records, bytes: 0 };
  const seed = crc32(sequenceBytes(sequence));
  let offset = headerBytes;
  while (offset + frameBytes <= data.length) {
    const length = data.readUInt32LE(offset);
    if (length === 0 || length > maxRecordBytes || offset + frameBytes + length > data.length) break;
    const payload = data.subarray(offset + frameBytes, offset + frameBytes + length);
    if (crc32(payload, seed) !== data.readUInt32LE(offset + 4)) break;
    records.push(Uint8Array.prototype.slice.call(payload));
    offset += frameBytes + length;
  }
  return { records, bytes: offset - headerBytes };
}

