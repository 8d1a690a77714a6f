import { once } from "node:events";
import { toJsonString } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";

/** Writing to a stream whose reader has gone (`drce logs x | head -1`). */
export class BrokenPipeError extends Error {
  override name = "BrokenPipeError";
  /** The errno code, as a failed write reports it. */
  readonly code = "EPIPE";
  constructor() {
    super("broken pipe");
  }
}

/**
 * Writes bytes to a stream and waits for it to drain when its buffer is full, so that a
 * fast task and a slow reader (`drce run ... | less`) do not pile output up in memory.
 */
export async function writeBytes(stream: NodeJS.WritableStream, data: Uint8Array | string, signal?: AbortSignal): Promise<void> {
  if (data.length === 0) return;
  // After EPIPE the stream is destroyed and would never drain.
  if ((stream as { destroyed?: boolean }).destroyed === true) throw new BrokenPipeError();
  if (!stream.write(data)) await once(stream, "drain", signal === undefined ? {} : { signal });
}

/** Writes text lines, each ended by a newline. */
export async function writeLines(stream: NodeJS.WritableStream, lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  await writeBytes(stream, lines.map((line) => `${line}\n`).join(""));
}

/**
 * Writes a message as one line of JSON in the proto JSON mapping (enum names, base64
 * bytes, string int64), with every field present so that scripts see a stable shape.
 */
export async function writeJson<Desc extends DescMessage>(stream: NodeJS.WritableStream, schema: Desc, message: MessageShape<Desc>): Promise<void> {
  await writeBytes(stream, `${toJsonString(schema, message, { alwaysEmitImplicit: true })}\n`);
}

/** Lays out rows as columns separated by two spaces; the last column is not padded. */
export function formatTable(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  ").trimEnd());
}

/** A Unix millisecond time as ISO 8601 UTC to the second, or "-" for zero. */
export function formatTime(ms: bigint | number): string {
  const value = Number(ms);
  if (value <= 0) return "-";
  return new Date(value).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A duration in milliseconds, human-sized ("850ms", "12.3s", "5m07s"). */
export function formatDuration(ms: bigint | number): string {
  const value = Number(ms);
  if (value < 1000) return `${value}ms`;
  if (value < 60_000) return `${(value / 1000).toFixed(1)}s`;
  const minutes = Math.floor(value / 60_000);
  const seconds = Math.floor((value % 60_000) / 1000);
  if (minutes < 60) return `${minutes}m${String(seconds).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}
