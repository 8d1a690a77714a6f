import type { Client } from "@connectrpc/connect";
import type { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { isFinalState } from "../domain/states.js";
import type { StreamName } from "../domain/task.js";
import type { KeptOutput, TaskView } from "../domain/view.js";
import type { Logger } from "../logger.js";

/** Where a remote output is read from. */
export interface RemoteOutputSource {
  /** The TaskService client of the node holding the task. */
  readonly client: Client<typeof TaskService>;
  /** The task's id on the node. */
  readonly id: string;
  /** The stream read. */
  readonly stream: StreamName;
  /** Bytes of the stream's kept copy (head and tail of a cut stream, joined). */
  readonly size: number;
  /** Where the other stream ends, as the command wrote it: the stream is asked for from there, so it sends none of it. */
  readonly otherEnd: number;
}

/**
 * A node's kept output of one stream, read from the node as it is asked for: a
 * StreamTaskOutput call opened at the first read, whose chunks (at most a MiB each, the
 * HTTP/2 window holding the rest back) are handed out in order, so that the manager holds a
 * chunk or two of it, never the whole. A read at another position than the next one (the
 * same output sent twice, as a legacy reply's stderr and stderror) starts the call again.
 * A stream that ends before `size` fails the read: the reply it feeds breaks loudly rather
 * than carrying a short output.
 */
export function remoteOutput(source: RemoteOutputSource, onClose?: () => void): KeptOutput {
  const { client, id, stream, size } = source;
  const wanted = stream === "stdout" ? 1 : 2;
  let controller: AbortController | undefined;
  let iterator: AsyncIterator<{ event: { case: string | undefined; value?: unknown } }> | undefined;
  // Chunks received and not yet handed out, in order; `consumed` is the stream position of the first one's first byte.
  let queue: Buffer[] = [];
  let queued = 0;
  let consumed = 0;
  let closed = false;

  const open = (): void => {
    controller?.abort();
    controller = new AbortController();
    const other = BigInt(source.otherEnd);
    iterator = client.streamTaskOutput({ task: id, stdoutOffset: stream === "stdout" ? 0n : other, stderrOffset: stream === "stderr" ? 0n : other, follow: false }, { signal: controller.signal })[Symbol.asyncIterator]() as typeof iterator;
    queue = [];
    queued = 0;
    consumed = 0;
  };

  /** Pulls chunks until `bytes` bytes are queued or the stream ended. */
  const fill = async (bytes: number): Promise<void> => {
    while (queued < bytes) {
      const next = await iterator!.next();
      if (next.done === true) return;
      const event = next.value.event;
      if (event.case !== "output") continue;
      const chunk = event.value as { stream: number; data: Uint8Array };
      if (chunk.stream !== wanted || chunk.data.byteLength === 0) continue;
      queue.push(Buffer.from(chunk.data.buffer, chunk.data.byteOffset, chunk.data.byteLength));
      queued += chunk.data.byteLength;
    }
  };

  /** Takes `bytes` queued bytes off the front: into `into` at `at` when given, else dropped. */
  const take = (bytes: number, into?: Buffer, at = 0): void => {
    for (let left = bytes; left > 0; ) {
      const head = queue[0]!;
      const used = Math.min(left, head.length);
      if (into !== undefined) head.copy(into, at + bytes - left, 0, used);
      if (used === head.length) queue.shift();
      else queue[0] = head.subarray(used);
      left -= used;
      queued -= used;
      consumed += used;
    }
  };

  return {
    size,
    async read(position, length) {
      if (closed) throw new Error(`the output of task ${id} was read after it was closed`);
      const end = Math.min(size, position + length);
      if (end <= position) return new Uint8Array(0);
      if (iterator === undefined || position < consumed) open();
      // Skips to the position asked for, a chunk at a time.
      while (consumed < position) {
        await fill(1);
        if (queued === 0) break;
        take(Math.min(queued, position - consumed));
      }
      await fill(end - consumed);
      if (consumed !== position || consumed + queued < end) throw new Error(`node output of task ${id} (${stream}) ended at ${consumed + queued} bytes of ${size}`);
      const head = queue[0]!;
      if (head.length >= end - position) {
        // Within one received chunk (most reads): handed out as it is, no copy.
        const out = head.subarray(0, end - position);
        take(out.length);
        return out;
      }
      // Across chunks: one copy, of exactly the bytes asked for.
      const out = Buffer.allocUnsafe(end - position);
      take(out.length, out);
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      controller?.abort();
      queue = [];
      queued = 0;
      onClose?.();
    },
  };
}

/** A kept output held in memory. */
export function memoryOutput(bytes: Uint8Array): KeptOutput {
  return {
    size: bytes.length,
    read: async (position, length) => bytes.subarray(position, Math.min(bytes.length, position + length)),
    close: async () => undefined,
  };
}

/**
 * The kept size of a stream a node's view tells, when it can be known before reading:
 * every byte written when the stream was not cut, the written bytes less the gap when it
 * was. A task still running, or a cut stream without its gap, has none.
 */
export function keptSizeOf(view: TaskView, stream: StreamName): number | undefined {
  if (!isFinalState(view.status.state)) return undefined;
  const total = stream === "stdout" ? view.status.stdoutSize : view.status.stderrSize;
  const truncated = stream === "stdout" ? view.status.stdoutTruncated : view.status.stderrTruncated;
  if (!truncated) return total;
  const gap = stream === "stdout" ? view.stdoutGap : view.stderrGap;
  return gap === undefined ? undefined : total - gap.bytes;
}

/** Options of {@link withRemoteOutputs}. */
export interface RemoteOutputsOptions {
  /** The TaskService client of a node. */
  readonly clientOf: (node: string) => Client<typeof TaskService>;
  /** Reads the whole output of a view whose kept size is not known before reading (a running task's). */
  readonly gather: (node: string, view: TaskView) => Promise<TaskView>;
  /** Called once every remote output made was closed (at once when none was made); its failure is logged. */
  readonly released?: () => Promise<void>;
  readonly logger: Logger;
}

/** Counts the remote outputs of one reply, and runs `released` once the last of them closed. */
class ReleaseCount {
  private open = 0;
  private made = false;

  constructor(
    private readonly id: string,
    private readonly options: RemoteOutputsOptions,
  ) {}

  /** A new remote output's close hook. */
  readonly opened = (): (() => void) => {
    this.open++;
    this.made = true;
    return () => {
      if (--this.open > 0 || this.options.released === undefined) return;
      this.options.released().catch((error: unknown) => this.options.logger.error({ task: this.id, err: String(error) }, "a task's outputs were sent, but what was to follow them failed"));
    };
  };

  /** With no remote output made, nothing is read later: what follows the outputs follows now, before the reply. */
  async settle(): Promise<void> {
    if (!this.made) await this.options.released?.().catch((error: unknown) => this.options.logger.error({ task: this.id, err: String(error) }, "a task's outputs were read, but what was to follow them failed"));
  }
}

/** One node's view of a task with its whole kept output (see {@link withRemoteOutputs}). */
async function attach(node: string, view: TaskView, id: string, options: RemoteOutputsOptions, count: ReleaseCount): Promise<TaskView> {
  if (view.stdout === undefined && view.stderr === undefined) return view;
  if ((view.stdoutMore === true && keptSizeOf(view, "stdout") === undefined) || (view.stderrMore === true && keptSizeOf(view, "stderr") === undefined)) return options.gather(node, view);
  const outputs: { -readonly [K in "stdoutFile" | "stderrFile"]?: KeptOutput } = {};
  for (const stream of ["stdout", "stderr"] as const) {
    const file = stream === "stdout" ? "stdoutFile" : "stderrFile";
    if (view[stream === "stdout" ? "stdoutMore" : "stderrMore"] !== true) {
      outputs[file] = memoryOutput(view[stream] ?? new Uint8Array(0));
      continue;
    }
    const otherEnd = stream === "stdout" ? view.status.stderrSize : view.status.stdoutSize;
    outputs[file] = remoteOutput({ client: options.clientOf(node), id, stream, size: keptSizeOf(view, stream)!, otherEnd }, count.opened());
  }
  return { ...view, ...outputs };
}

/**
 * A fanned-out task's merged view with each node item's whole kept output, for a legacy
 * reply: a stream whose inline bytes are all it has is kept as they are; a longer one of a
 * task that ended is a {@link remoteOutput} read from its node while the reply is sent, node
 * by node in the reply's order; a running task's is gathered (its size is not fixed yet).
 */
export async function withRemoteOutputs(view: TaskView, id: string, options: RemoteOutputsOptions): Promise<TaskView> {
  const count = new ReleaseCount(id, options);
  const items = await Promise.all((view.nodes ?? []).map(async (item) => (item.view === undefined ? item : { ...item, view: await attach(item.node, item.view, id, options, count) })));
  await count.settle();
  return { ...view, nodes: items };
}

/** A one-node task's view with its whole kept output, read from its node as a legacy reply is sent (as {@link withRemoteOutputs}). */
export async function withRemoteOutput(node: string, view: TaskView, id: string, options: RemoteOutputsOptions): Promise<TaskView> {
  const count = new ReleaseCount(id, options);
  const shown = await attach(node, view, id, options, count);
  await count.settle();
  return shown;
}
