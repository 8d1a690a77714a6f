import { Stream, type OutputChunk, type OutputGap } from "../../gen/drce/v1/task_pb.js";
import type { CliIo } from "./io.js";
import { writeBytes, writeLines } from "./output.js";

/** Which of a task's streams to write. */
export interface WantedStreams {
  readonly stdout: boolean;
  readonly stderr: boolean;
}

/** The name of a stream in messages. */
const nameOf = (stream: Stream): string => (stream === Stream.STDERR ? "stderr" : "stdout");

/**
 * The one-line warning for bytes the node did not keep: a stream is never written short
 * without saying so, and where.
 */
export function gapWarning(gap: OutputGap): string {
  return `drce: ${gap.bytes} bytes of ${nameOf(gap.stream)} were not kept by the node (from offset ${gap.offset}; it keeps the head and the tail of a stream past --max-output-bytes)`;
}

/**
 * Writes output messages as they come: a chunk to this process's stdout or stderr, a gap
 * as its warning on stderr, at the point in the stream where the bytes are missing.
 */
export function createOutputWriter(io: CliIo, wanted: WantedStreams = { stdout: true, stderr: true }, signal?: AbortSignal) {
  return {
    async chunk(chunk: OutputChunk): Promise<void> {
      if (!(chunk.stream === Stream.STDERR ? wanted.stderr : wanted.stdout)) return;
      await writeBytes(chunk.stream === Stream.STDERR ? io.stderr : io.stdout, chunk.data, signal);
    },
    async gap(gap: OutputGap): Promise<void> {
      if (!(gap.stream === Stream.STDERR ? wanted.stderr : wanted.stdout)) return;
      await writeLines(io.stderr, [gapWarning(gap)]);
    },
  };
}
