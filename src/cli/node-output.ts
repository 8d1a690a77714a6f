import { Stream, type OutputChunk, type OutputGap } from "../../gen/drce/v1/task_pb.js";
import type { CliIo } from "./io.js";
import { writeBytes, writeLines } from "./output.js";
import { gapWarning } from "./output-stream.js";

/** Options of {@link createNodeOutput}. */
export interface NodeOutputOptions {
  readonly io: CliIo;
  /** Prefix each line with its node's name; false passes the bytes through as they come. */
  readonly prefix: boolean;
  /** The names known before any output (`--nodes`, the accepted task's nodes): they set the prefix width. */
  readonly names?: readonly string[];
  /** Aborts a write that waits for a slow reader. */
  readonly signal?: AbortSignal;
}

/** Writes the output of a task that runs on several nodes, each line marked with its node. */
export interface NodeOutput {
  /** Widens the prefix for names learnt after the start. */
  addNames(names: readonly string[]): void;
  /** A piece of one node's output: its complete lines are written, the rest is kept until the line ends. */
  chunk(node: string, chunk: OutputChunk): Promise<void>;
  /** Bytes one node did not keep: its pending lines first, then the warning, on stderr. */
  gap(node: string, gap: OutputGap): Promise<void>;
  /** One node's part ended: a last line without its newline is written now, with one. */
  endNode(node: string): Promise<void>;
  /** The task ended: every node's last line is written. */
  end(): Promise<void>;
}

const newline = 0x0a;

/**
 * Creates the writer of a fan-out's output: `name | line`, the name padded to the longest
 * one, stdout lines to stdout and stderr lines to stderr. A line split over several chunks
 * is joined per node and stream before it is written, so lines of different nodes never
 * mix; a line is written as soon as its newline arrives, so output stays live.
 */
export function createNodeOutput(options: NodeOutputOptions): NodeOutput {
  const { io, signal } = options;
  let width = 0;
  const addNames = (names: readonly string[]): void => {
    for (const name of names) width = Math.max(width, name.length);
  };
  addNames(options.names ?? []);
  // Pending bytes of an unfinished line, per node and stream.
  const pending = new Map<string, Buffer>();
  const key = (node: string, stream: Stream): string => `${stream === Stream.STDERR ? "e" : "o"}:${node}`;
  const target = (stream: Stream): NodeJS.WritableStream => (stream === Stream.STDERR ? io.stderr : io.stdout);
  const prefixOf = (node: string): string => {
    addNames([node]);
    return `${node.padEnd(width)} | `;
  };

  async function writePrefixed(node: string, stream: Stream, data: Buffer): Promise<void> {
    const prefix = Buffer.from(prefixOf(node));
    const parts: Buffer[] = [];
    let start = 0;
    for (let end = data.indexOf(newline, start); end >= 0; end = data.indexOf(newline, start)) {
      parts.push(prefix, data.subarray(start, end + 1));
      start = end + 1;
    }
    await writeBytes(target(stream), Buffer.concat(parts), signal);
  }

  async function flush(node: string, stream: Stream): Promise<void> {
    const rest = pending.get(key(node, stream));
    if (rest === undefined) return;
    pending.delete(key(node, stream));
    await writePrefixed(node, stream, Buffer.concat([rest, Buffer.of(newline)]));
  }

  return {
    addNames,
    async chunk(node, chunk) {
      if (!options.prefix) return writeBytes(target(chunk.stream), chunk.data, signal);
      const k = key(node, chunk.stream);
      const data = Buffer.concat([pending.get(k) ?? Buffer.alloc(0), chunk.data]);
      const last = data.lastIndexOf(newline);
      if (last < data.length - 1) pending.set(k, Buffer.from(data.subarray(last + 1)));
      else pending.delete(k);
      if (last >= 0) await writePrefixed(node, chunk.stream, data.subarray(0, last + 1));
    },
    async gap(node, gap) {
      await flush(node, gap.stream);
      await writeLines(io.stderr, [gapWarning(gap).replace(/^drce: /, `drce: ${node}: `)]);
    },
    async endNode(node) {
      await flush(node, Stream.STDOUT);
      await flush(node, Stream.STDERR);
    },
    async end() {
      for (const k of [...pending.keys()]) await flush(k.slice(2), k.startsWith("e") ? Stream.STDERR : Stream.STDOUT);
    },
  };
}
