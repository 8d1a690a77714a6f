import type { TaskMode, TaskState } from "./states.js";
import type { Placement } from "./placement.js";

/** File action bits (legacy `action` mask). */
export const FileAction = {
  CreateBefore: 1,
  DeleteBefore: 2,
  ReadAfter: 4,
  DeleteAfter: 8,
  Base64: 0x80000000,
} as const;

/** One entry of a task's `files`. */
export interface FileSpec {
  /** Name relative to the working directory. */
  readonly name: string;
  /** Raw content (already decoded from base64 when bit 31 was set on the legacy wire). */
  readonly data: Uint8Array;
  /** Action bit mask, bit 31 included. */
  readonly action: number;
}

/** A file read back after the command ran. */
export interface FileResult {
  /** Name as requested. */
  readonly name: string;
  /** Content. */
  readonly data: Uint8Array;
  /** The request entry's action mask. */
  readonly action: number;
}

/** Resource limits; zero means no limit. Percentages are 0..100. */
export interface Limits {
  readonly procMax: number;
  readonly threadsMax: number;
  readonly cpuMax: number;
  readonly iowaitMax: number;
  readonly vramFree: number;
  readonly vramFreeMin: number;
  readonly rramFree: number;
  readonly rramFreeMin: number;
  readonly diskFree: number;
  readonly diskFreeMin: number;
  readonly iowaitUsageMax: number;
  readonly vramUsageMax: number;
  readonly rramUsageMax: number;
  readonly diskUsageMax: number;
  readonly diskUsageMaxBytes: number;
}

/** Limits with every field zero: nothing is limited. */
export const noLimits: Limits = Object.freeze({
  procMax: 0,
  threadsMax: 0,
  cpuMax: 0,
  iowaitMax: 0,
  vramFree: 0,
  vramFreeMin: 0,
  rramFree: 0,
  rramFreeMin: 0,
  diskFree: 0,
  diskFreeMin: 0,
  iowaitUsageMax: 0,
  vramUsageMax: 0,
  rramUsageMax: 0,
  diskUsageMax: 0,
  diskUsageMaxBytes: 0,
});

/** Where a command runs: on the node, or on a host reached over SSH. */
export type Session =
  | {
      readonly type: "local";
      /** Run as this user id (the node must run as root); absent: the node's default user. */
      readonly uid?: number;
      /** Group id for uid; absent: the user's primary group. */
      readonly gid?: number;
    }
  | {
      readonly type: "ssh";
      /** Host; empty means 127.0.0.1. */
      readonly host: string;
      /** Port; zero means 22. */
      readonly port: number;
      readonly user: string;
      readonly password: string;
      readonly privateKey: string;
      readonly passphrase: string;
      /** Pinned "SHA256:..." host key fingerprint, or empty. */
      readonly hostFingerprint: string;
    };

/** A request to run one command, with its subtasks: the domain form of the protocol's task. */
export interface TaskSpec {
  /** Task id; never empty once the core accepted the task. */
  readonly id: string;
  /** Alias, or empty. */
  readonly alias: string;
  /** Shell command line; empty when argv is used. */
  readonly command: string;
  /** Argument vector run without a shell, when command is empty. */
  readonly argv: readonly string[];
  /** Bytes for stdin. */
  readonly input: Uint8Array;
  /** Variables added to the minimal environment. */
  readonly env: Readonly<Record<string, string>>;
  /** Working directory (legacy home_dir); empty means the task's own directory. */
  readonly workDir: string;
  /** Program running command, e.g. "/bin/bash -c"; empty means "/bin/sh -c". */
  readonly shell: string;
  /** Execution target. */
  readonly session: Session;
  /** Sync (1) or async (2). */
  readonly mode: TaskMode;
  /** Seconds; zero means none. */
  readonly timeoutSeconds: number;
  /** Milliseconds; zero means none. Bounds the subtask tree. */
  readonly timeMaxMs: number;
  /** Delete data once the final result was delivered. */
  readonly cleanup: boolean;
  /** Files handled before and after the command. */
  readonly files: readonly FileSpec[];
  /** Resource limits. */
  readonly limits: Limits;
  /** Subtasks, run after the command in order. */
  readonly subtasks: readonly TaskSpec[];
  /** Delivery deadline in ms while queued; zero means none. */
  readonly ttlMs: number;
  /** Keep stdin open for streamed input after `input`. */
  readonly openStdin: boolean;
  /** Which data nodes a manager gives the task to; a data node ignores it. Root tasks only. */
  readonly placement?: Placement;
}

/** Builds a TaskSpec from the fields given, every other field taking its default. */
export function taskSpec(fields: Partial<TaskSpec>): TaskSpec {
  return {
    id: "",
    alias: "",
    command: "",
    argv: [],
    input: new Uint8Array(0),
    env: {},
    workDir: "",
    shell: "",
    session: { type: "local" },
    mode: 1,
    timeoutSeconds: 0,
    timeMaxMs: 0,
    cleanup: false,
    files: [],
    limits: noLimits,
    subtasks: [],
    ttlMs: 0,
    openStdin: false,
    ...fields,
  };
}

/** Output streams. */
export type StreamName = "stdout" | "stderr";

/**
 * The persisted status of a task: everything its result needs but the output bytes.
 * This is what `status.json` holds.
 */
export interface TaskStatus {
  readonly id: string;
  readonly alias: string;
  readonly parentId: string;
  readonly subtaskIds: readonly string[];
  readonly mode: TaskMode;
  readonly state: TaskState;
  readonly errorCode: number;
  readonly errorMessage: string;
  readonly pid: number;
  readonly pgid: number;
  /** Start time of the leader in clock ticks since boot (/proc/<pid>/stat field 22). */
  readonly procStartTicks: number;
  readonly exitStatus: number;
  /** Signal name that ended the leader, or empty. */
  readonly signal: string;
  /** Submission time, Unix ms. */
  readonly submittedAt: number;
  /** Start time, Unix ms; zero before start. */
  readonly startedAt: number;
  /** End time, Unix ms; zero while not final. */
  readonly finishedAt: number;
  readonly stdoutSize: number;
  readonly stderrSize: number;
  readonly stdoutTruncated: boolean;
  readonly stderrTruncated: boolean;
  /** Names of files read back, stored in the task's directory. */
  readonly files: readonly { readonly name: string; readonly action: number }[];
  /** Pids of the group that outlived termination and could not be killed. */
  readonly escapedPids: readonly number[];
  /** Summary of the command, for lists. */
  readonly command: string;
  /** Peak usage figures sampled while the task ran (TASK_* fields). */
  readonly usage: Readonly<Record<string, number>>;
  /** Bytes of stdin given in the request (`input`); absent in statuses written before it existed. */
  readonly inputSize?: number;
}

/** A status with every field at its zero value (a task not yet run) but those given. */
export function taskStatus(fields: Partial<TaskStatus> & Pick<TaskStatus, "id">): TaskStatus {
  return {
    alias: "",
    parentId: "",
    subtaskIds: [],
    mode: 1,
    state: 0,
    errorCode: 0,
    errorMessage: "",
    pid: 0,
    pgid: 0,
    procStartTicks: 0,
    exitStatus: 0,
    signal: "",
    submittedAt: 0,
    startedAt: 0,
    finishedAt: 0,
    stdoutSize: 0,
    stderrSize: 0,
    stdoutTruncated: false,
    stderrTruncated: false,
    files: [],
    escapedPids: [],
    command: "",
    usage: {},
    ...fields,
  };
}

/** How to terminate a task (legacy terminate request). */
export interface TerminateOptions {
  /** 1: SIGTERM then SIGKILL; 2: `signal` only. */
  readonly alg: 1 | 2;
  /** Milliseconds between tries. */
  readonly delayMs: number;
  /** Number of tries. */
  readonly repeat: number;
  /** Signal number for alg 2. */
  readonly signal: number;
  /** Delete data after termination. */
  readonly cleanup: boolean;
}

/** The default terminate request: SIGTERM, then SIGKILL after a second, three tries. */
export const defaultTerminate: TerminateOptions = Object.freeze({
  alg: 1,
  delayMs: 1000,
  repeat: 3,
  signal: 9,
  cleanup: false,
});
