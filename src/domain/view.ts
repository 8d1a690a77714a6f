import type { FileResult, TaskStatus } from "./task.js";
import type { NodeResult } from "./placement.js";

/**
 * What the core answers about a task: its status, the time it ran, and, depending on
 * the call, its output, files, usage figures and subtasks. Transports turn it into a
 * Connect `TaskResult` or a legacy result item.
 */
export interface TaskView {
  readonly status: TaskStatus;
  /** Milliseconds run: total if final, so far if running, zero before start. */
  readonly timeMs: number;
  /** stdout bytes, on fetch: the first bytes of the kept copy, at most the node's inline bound. */
  readonly stdout?: Uint8Array;
  /** stderr bytes, on fetch, bounded likewise. */
  readonly stderr?: Uint8Array;
  /** True when more stdout is kept than `stdout` holds. */
  readonly stdoutMore?: boolean;
  /** True when more stderr is kept than `stderr` holds. */
  readonly stderrMore?: boolean;
  /** Where stdout's kept copy was cut, on a view with output of a truncated stream. */
  readonly stdoutGap?: KeptGap;
  /** Where stderr's kept copy was cut, likewise. */
  readonly stderrGap?: KeptGap;
  /**
   * The whole kept stdout, open for reading, when the caller asked for it (the legacy
   * protocol carries it all); the caller closes it (see {@link releaseView}).
   */
  readonly stdoutFile?: KeptOutput;
  /** The whole kept stderr, likewise. */
  readonly stderrFile?: KeptOutput;
  /** Files read back, on fetch and sync submit. */
  readonly files?: readonly FileResult[];
  /** TASK_* and HOST_* figures, on an extended check. */
  readonly fields?: Readonly<Record<string, number>>;
  /** Views of the subtasks, in request order. */
  readonly subtasks: readonly TaskView[];
  /** On a manager, for a task placed on several nodes: one item per selected node, in name order. */
  readonly nodes?: readonly NodeResult[];
  /** On a manager, for a task placed on one node: that node's name. */
  readonly placedOn?: string;
  /**
   * On a manager, for a view read from a node's reply: the node that answered it. Results built
   * from the view name that node (its host, port and name), not the manager.
   */
  readonly origin?: ViewOrigin;
}

/** The node a view came from, as its reply named itself. */
export interface ViewOrigin {
  /** Host name or address the node shows in results. */
  readonly host: string;
  /** Port the node shows in results. */
  readonly port: number;
  /** Node name. */
  readonly node: string;
}

/**
 * A kept output stream opened for reading, so that its bytes can be sent piece by piece
 * instead of held in memory. It stays readable after the task is deleted (the file is open).
 */
export interface KeptOutput {
  /** Bytes kept. */
  readonly size: number;
  /** Reads up to `length` bytes at `position` (fewer at the end). */
  read(position: number, length: number): Promise<Uint8Array>;
  /** Closes the file; safe to call more than once. */
  close(): Promise<void>;
}

/** Bytes of a stream that were not kept: from `offset` (the end of the kept head), `bytes` of them. */
export interface KeptGap {
  readonly offset: number;
  readonly bytes: number;
}

/** How much output a view carries: none, the first bytes (typed API), or the whole kept copy open for reading (legacy). */
export type OutputMode = "none" | "inline" | "whole";

/** Closes every kept output a view (and its subtasks) holds open. */
export async function releaseView(view: TaskView): Promise<void> {
  await Promise.all([view.stdoutFile?.close(), view.stderrFile?.close(), ...view.subtasks.map(releaseView)]);
}
