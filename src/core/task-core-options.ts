import type { TaskSpec } from "../domain/task.js";
import type { RunAs, Runner, TaskUsage } from "../executor/runner.js";
import type { SshRunner } from "../executor/ssh/ssh-runner.js";
import type { TaskStore } from "../store/task-store.js";
import type { TaskEvent } from "./api.js";
import type { NodeOptions } from "./node-options.js";
import type { SessionTable } from "./session-table.js";

/** A refusal of a start limit, as the limits checker reports it. */
export interface LimitRefusal {
  /** The protocol's limit name, e.g. "rram_free_min". */
  readonly name: string;
  /** Message naming the limit and the measured value. */
  readonly message: string;
}

/** Node-wide resource hooks the core consults; all optional. */
export interface ResourceHooks {
  /** Checks a task's start limits against the host; returns a refusal or undefined. */
  checkStart?(spec: TaskSpec, workDir: string): LimitRefusal | undefined;
  /** Checks a running task's usage against its *_usage_max limits. */
  checkRun?(spec: TaskSpec, usage: TaskUsage & { readonly diskBytes: number }): LimitRefusal | undefined;
  /** Bytes written in a directory (for disk_usage_max). */
  directoryBytes?(dir: string): Promise<number>;
  /** HOST_* figures for an extended check. */
  hostFields?(): Readonly<Record<string, number>>;
}

/**
 * Options of the task core: the node options it reads (an absent inline bound or
 * retention bound is none), and the parts it is built from.
 */
export interface TaskCoreOptions
  extends Pick<NodeOptions, "maxConcurrent" | "maxQueue" | "maxOutputBytes" | "maxTaskMs" | "maxFileBytes" | "allowedDirs" | "allowEnv" | "eventHistory" | "sampleIntervalMs">,
    Partial<Pick<NodeOptions, "inlineOutputBytes" | "retainFinishedMs" | "retainMaxTasks">> {
  readonly store: TaskStore;
  /** Runner for local sessions. */
  readonly localRunner: Runner;
  /** Runner for SSH sessions; without it SSH tasks are refused (legacy 5001). */
  readonly sshRunner?: SshRunner | undefined;
  /**
   * Session runners that replace the ones built from `localRunner` and `sshRunner`, by
   * session type (a test's scripted runner, a manager's forwarding one).
   */
  readonly sessions?: SessionTable | undefined;
  /** Resource hooks. */
  readonly resources?: ResourceHooks | undefined;
  /** Decides the user a local task runs as, or throws a DrceError refusing it (see run-as.ts). */
  readonly runAs?: ((spec: TaskSpec) => RunAs | undefined) | undefined;
  /** Called after a retention sweep that deleted trees, with their number and the tasks they held. */
  readonly onRetentionSweep?: ((trees: number, tasks: number) => void) | undefined;
  /** Called with each event (logging, metrics, notifications). */
  readonly onEvent?: ((event: TaskEvent) => void) | undefined;
  /**
   * Called with an error no expected outcome explains (a fault of the node, not of the task),
   * after the core counted it (see the core's `internalErrors()`); a task it hit ends with
   * error 107 and a message that does not expose it.
   */
  readonly onInternalError?: ((taskId: string, error: unknown) => void) | undefined;
}
