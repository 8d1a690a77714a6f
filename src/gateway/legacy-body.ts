import { randomBytes } from "node:crypto";
import type { KeptOutput } from "../domain/view.js";
import type { LegacyCover, LegacyResultItem } from "./legacy-codec.js";

/**
 * A legacy reply body made of parts, so that a task's whole kept output (256 MiB by
 * default) travels as the base64 of its file read piece by piece, never as one string in
 * memory. Its exact length is known before the first byte is made (an HTTP Content-Length,
 * or the one buffer a ZeroMQ frame needs).
 */
export interface LegacyBody {
  /** Bytes the body has in all. */
  readonly byteLength: number;
  /** The body's bytes, in pieces of at most about a MiB; each piece is the caller's. */
  chunks(): AsyncIterable<Uint8Array>;
  /** Closes the outputs the body reads; safe to call more than once, and without reading. */
  release(): Promise<void>;
}

/** One part of a body before cover encoding: JSON text, or the base64 of a kept output. */
type Part = { readonly text: string } | { readonly output: KeptOutput };

/** Bytes of output read (and base64-encoded) at a time: a multiple of 3, so that pieces encode independently. */
const readBytes = 3 * 256 * 1024;

/** Length of the base64 of `bytes` bytes, with padding. */
const base64Length = (bytes: number): number => 4 * Math.ceil(bytes / 3);

/**
 * Stands a placeholder string in for each kept output while an item is serialised, then
 * cuts the JSON at the placeholders. The placeholder carries a random nonce, so no text of
 * the reply (an error message, a file) can be mistaken for one.
 */
export class OutputPlaceholders {
  private readonly nonce = randomBytes(12).toString("hex");
  private readonly outputs: KeptOutput[] = [];

  /** The placeholder string of an output (put where its base64 goes). */
  readonly placeholder = (output: KeptOutput): string => {
    this.outputs.push(output);
    return `@drce-output:${this.nonce}:${this.outputs.length - 1}@`;
  };

  /** Every output a placeholder was made for (the same one may appear twice: stderr and stderror). */
  get all(): readonly KeptOutput[] {
    return this.outputs;
  }

  /** Cuts JSON text into text parts and output parts. */
  split(json: string): Part[] {
    const pattern = new RegExp(`@drce-output:${this.nonce}:([0-9]+)@`, "g");
    const parts: Part[] = [];
    let last = 0;
    for (const match of json.matchAll(pattern)) {
      parts.push({ text: json.slice(last, match.index) });
      parts.push({ output: this.outputs[Number(match[1])]! });
      last = match.index + match[0].length;
    }
    parts.push({ text: json.slice(last) });
    return parts;
  }
}

/**
 * Builds the body of a legacy reply: the JSON array of items (their kept outputs given as
 * placeholders of `placeholders`), wrapped in the request's cover when it came in one, the
 * same bytes `encodeLegacyResponse` makes of the same items with the outputs inline.
 */
export function legacyBody(items: readonly LegacyResultItem[], cover: LegacyCover | undefined, placeholders: OutputPlaceholders): LegacyBody {
  const parts = placeholders.split(JSON.stringify(items));
  const release = async (): Promise<void> => {
    await Promise.all(placeholders.all.map((output) => output.close()));
  };
  const innerLength = parts.reduce((sum, part) => sum + ("text" in part ? Buffer.byteLength(part.text) : base64Length(part.output.size)), 0);
  if (cover === undefined) return { byteLength: innerLength, chunks: () => partChunks(parts), release };

  const head = `{"type":${JSON.stringify(cover.type)},"data":"`;
  const tail = `","ttl":${JSON.stringify(cover.ttl)}}`;
  const frame = Buffer.byteLength(head) + Buffer.byteLength(tail);
  if (cover.base64) {
    return {
      byteLength: frame + base64Length(innerLength),
      async *chunks() {
        yield Buffer.from(head);
        yield* base64Stream(partChunks(parts));
        yield Buffer.from(tail);
      },
      release,
    };
  }
  // The cover's data is the JSON as a JSON string: text is escaped, base64 needs no escaping.
  const escaped = parts.map((part): Part => ("text" in part ? { text: JSON.stringify(part.text).slice(1, -1) } : part));
  const escapedLength = escaped.reduce((sum, part) => sum + ("text" in part ? Buffer.byteLength(part.text) : base64Length(part.output.size)), 0);
  return {
    byteLength: frame + escapedLength,
    async *chunks() {
      yield Buffer.from(head);
      yield* partChunks(escaped);
      yield Buffer.from(tail);
    },
    release,
  };
}

/** The bytes of parts: text as UTF-8, outputs as base64 read a piece at a time. */
async function* partChunks(parts: readonly Part[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) {
    if ("text" in part) {
      if (part.text !== "") yield Buffer.from(part.text);
      continue;
    }
    const { output } = part;
    for (let position = 0; position < output.size; ) {
      const data = await output.read(position, Math.min(readBytes, output.size - position));
      if (data.length === 0) throw new Error("a kept output ended before its size");
      // Pieces are multiples of 3 bytes (but the last), so their base64 joins without padding inside.
      if (data.length % 3 !== 0 && position + data.length < output.size) throw new Error("a kept output was read short");
      yield Buffer.from(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64"));
      position += data.length;
    }
  }
}

/** Base64 of a byte stream, piece by piece: the bytes past a multiple of 3 wait for the next piece. */
async function* base64Stream(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let carry = Buffer.alloc(0);
  for await (const piece of source) {
    const bytes = carry.length === 0 ? Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength) : Buffer.concat([carry, piece]);
    const whole = bytes.length - (bytes.length % 3);
    if (whole > 0) yield Buffer.from(bytes.subarray(0, whole).toString("base64"));
    carry = Buffer.from(bytes.subarray(whole));
  }
  if (carry.length > 0) yield Buffer.from(carry.toString("base64"));
}

/** Reads a whole body into one buffer of its exact length (a ZeroMQ frame must be one buffer). */
export async function collectLegacyBody(body: LegacyBody): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(body.byteLength);
  let filled = 0;
  for await (const chunk of body.chunks()) {
    if (filled + chunk.length > buffer.length) throw new Error("a legacy reply body is longer than it said");
    buffer.set(chunk, filled);
    filled += chunk.length;
  }
  if (filled !== buffer.length) throw new Error("a legacy reply body is shorter than it said");
  return buffer;
}
