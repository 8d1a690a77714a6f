import type { StreamName, TaskSpec, TaskStatus, TerminateOptions } from "../domain/task.js";
import type { NodeResult } from "../domain/placement.js";
import type { OutputMode, TaskView } from "../domain/view.js";

/** A task state change, as published to watchers (legacy notification 100). */
export interface TaskEvent {
  /** Sequence number, increasing by one per event on this node. */
  readonly seq: number;
  /** Status after the change. */
  readonly status: TaskStatus;
  /** Milliseconds run at the time of the change. */
  readonly timeMs: number;
  /** Unix ms of the change. */
  readonly at: number;
  /** Through a manager: the node whose task (or part of a fanned-out task) changed state. */
  readonly node?: string;
}

/** A piece of a task's output. */
export interface OutputChunk {
  readonly stream: StreamName;
  /** Byte offset of data within its stream. */
  readonly offset: number;
  /**
   * The bytes. They belong to the consumer, safe to keep and forward, unless it asked the
   * stream to lend them ({@link OutputStreamOptions.lendBuffers}): then they are valid only
   * until it asks for the next event.
   */
  readonly data: Uint8Array;
}

/** How a consumer of {@link TaskCore.streamOutput} or {@link TaskCore.run} takes the output bytes. */
export interface OutputStreamOptions {
  /**
   * True lends each chunk's bytes until the consumer asks for the next event: the stream
   * reads large chunks into two buffers it reuses in turn, which spares V8 a gigabyte of
   * fresh external memory per gigabyte sent. Only a consumer that is done with a chunk before
   * it asks for more (an encoder that serializes each message first, as the Connect handler
   * does) may ask for it. Absent or false: every chunk has bytes of its own.
   */
  readonly lendBuffers?: boolean;
}

/** Bytes of a stream that were not kept (the stream passed the node's cap). */
export interface OutputGap {
  readonly stream: StreamName;
  /** Offset in the stream of the first byte not kept. */
  readonly offset: number;
  /** Number of bytes not kept. */
  readonly bytes: number;
}

/**
 * One message of an attached run: accepted, output..., then the final result. Through a
 * manager, output and gaps of a task placed on several nodes name their `node`, and each
 * node's end is a "node-result" before the merged result; on a data node `node` is absent.
 */
export type RunEvent =
  | { readonly kind: "accepted"; readonly view: TaskView }
  | { readonly kind: "output"; readonly chunk: OutputChunk; readonly node?: string }
  | { readonly kind: "gap"; readonly gap: OutputGap; readonly node?: string }
  | { readonly kind: "node-result"; readonly result: NodeResult }
  | { readonly kind: "result"; readonly view: TaskView };

/**
 * One message of an output stream: output and gaps..., then the result once the task has
 * ended; through a manager named by node as in {@link RunEvent}.
 */
export type OutputEvent =
  | { readonly kind: "output"; readonly chunk: OutputChunk; readonly node?: string }
  | { readonly kind: "gap"; readonly gap: OutputGap; readonly node?: string }
  | { readonly kind: "node-result"; readonly result: NodeResult }
  | { readonly kind: "result"; readonly view: TaskView };

/** Result of a submission. */
export interface SubmitOutcome {
  /** The task's view at reply time (final for sync, NEW/QUEUED for async). */
  readonly view: TaskView;
  /** True when the id existed with the same request and nothing new was made. */
  readonly existing: boolean;
}

/**
 * The task lifecycle use cases, shared by every transport. `ref` is a task id or alias.
 * Expected failures throw DrceError (kinds: invalid, not-found, exists, precondition,
 * exhausted, unavailable).
 */
export interface TaskCore {
  /**
   * Sets a task tree; waits for it when its mode is sync. The signal aborts the wait only.
   * A sync reply carries output as `output` says (default "inline").
   */
  submit(spec: TaskSpec, signal?: AbortSignal, output?: OutputMode): Promise<SubmitOutcome>;
  /** The task's state; with extended, its usage and host figures in `fields`, and its output as `output` says. */
  check(ref: string, extended: boolean, output?: OutputMode): Promise<TaskView>;
  /** Terminates a running or queued task; a final one is answered as it is (precondition). */
  terminate(ref: string, options: TerminateOptions): Promise<TaskView>;
  /** Output (as `output` says, default "inline"), exit status and files; deletes the data afterwards when remove is true. */
  fetch(ref: string, remove: boolean, output?: OutputMode): Promise<TaskView>;
  /** Deletes a task's data; a running task is refused (precondition). Answers with state 9. */
  remove(ref: string): Promise<TaskView>;
  /** Every task the node holds, newest first. */
  list(): readonly TaskStatus[];
  /** Through a manager: the nodes a task (by id) was placed on, in the placement's order; absent on a data node. */
  placedOn?(id: string): readonly string[];
  /** Submits and streams; aborting the signal terminates the task. */
  run(spec: TaskSpec, signal: AbortSignal, options?: OutputStreamOptions): AsyncIterable<RunEvent>;
  /** Streams output from offsets; with follow, until the task ends. */
  streamOutput(ref: string, offsets: Readonly<Record<StreamName, number>>, follow: boolean, signal: AbortSignal, options?: OutputStreamOptions): AsyncIterable<OutputEvent>;
  /** Streams state events after a sequence number (0 = only new ones; -1 = the whole kept history). */
  watchEvents(afterSeq: number, ref: string, signal: AbortSignal): AsyncIterable<TaskEvent>;
  /** Writes to the stdin of an open_stdin task. */
  writeInput(ref: string, data: Uint8Array): Promise<void>;
  /** Closes the stdin of an open_stdin task. */
  endInput(ref: string): Promise<void>;
}

/** How a node names itself in results. */
export interface NodeIdentity {
  /** Host name or address shown in results. */
  readonly host: string;
  /** Port shown in results. */
  readonly port: number;
  /** Node name. */
  readonly node: string;
}
