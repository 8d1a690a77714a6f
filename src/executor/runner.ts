import type { Writable } from "node:stream";
import type { TaskSpec, TaskStatus, TerminateOptions } from "../domain/task.js";

/** Where a started process lives, as persisted before the task is reported running. */
export interface SpawnInfo {
  /** Leader pid (remote pid for SSH). */
  readonly pid: number;
  /** Process group id (remote pgid for SSH). */
  readonly pgid: number;
  /** /proc/<pid>/stat field 22 of a local leader, guarding against pid reuse; zero for remote. */
  readonly procStartTicks: number;
  /**
   * The leader's usage read right after the spawn (local runner), the task's first
   * sample: a running task then never shows zero resident memory and threads while it
   * waits for its group's first periodic sample (which gives its virtual memory). Undefined
   * when the runner cannot tell (SSH).
   */
  readonly usage?: TaskUsage | undefined;
}

/** How a started command ended. Expected outcomes are values, not exceptions. */
export type ExecOutcome =
  | {
      readonly kind: "exited";
      /** Exit code of the leader, or 128+N after signal N. */
      readonly exitStatus: number;
      /** Signal name that ended the leader (e.g. "SIGKILL"), or empty. */
      readonly signal: string;
      /** Pids of the group that could not be killed after the leader ended (no cgroup). */
      readonly escapedPids: readonly number[];
    }
  | {
      readonly kind: "failed";
      /** Legacy error code (15 shell missing, 16 cannot execute, 101 other). */
      readonly errorCode: number;
      /** Message safe for a caller. */
      readonly message: string;
    };

/** The user a local command runs as, when it is not the node's own (the node runs as root). */
export interface RunAs {
  /** User id. */
  readonly uid: number;
  /** Group id (supplementary groups are dropped). */
  readonly gid: number;
  /** User name for USER and LOGNAME (the uid as text when it has no passwd entry). */
  readonly name: string;
  /** Home directory for HOME ("/" when it has no passwd entry). */
  readonly home: string;
}

/** What a runner needs to start one command. */
export interface ExecRequest {
  /** The task (its subtasks are the core's business). */
  readonly spec: TaskSpec;
  /** The resolved working directory (local path, or remote path for SSH). */
  readonly workDir: string;
  /**
   * Sink for stdout; the runner writes with backpressure and does not end it. The bytes of
   * a write are the sink's only until it calls back (the local runner reads into a buffer
   * it reuses): a sink that keeps them copies them.
   */
  readonly stdout: Writable;
  /** Sink for stderr, likewise. */
  readonly stderr: Writable;
  /**
   * Called once the process exists, before any output is delivered as "running";
   * the core persists the spawn record in it. Its promise is awaited.
   */
  readonly onSpawn: (info: SpawnInfo) => Promise<void>;
  /** Run the command as this user (local runner only); undefined: as the node's own user. */
  readonly runAs?: RunAs | undefined;
}

/** A running command. */
export interface ExecHandle {
  /** Settles when the command has ended and its output has been written to the sinks. */
  readonly done: Promise<ExecOutcome>;
  /** Runs a terminate algorithm on the whole process group; settles when it ended or tries ran out. */
  terminate(options: TerminateOptions): Promise<void>;
  /** Writes to stdin (for open_stdin tasks); resolves when written. */
  writeInput(data: Uint8Array): Promise<void>;
  /** Closes stdin. */
  endInput(): void;
  /** Usage sample of the task's processes, or undefined when not available. */
  sampleUsage?(): Promise<TaskUsage | undefined>;
}

/** Usage of a task's processes at one moment. */
export interface TaskUsage {
  /** CPU, percent of one CPU since the previous sample. */
  readonly cpuPercent: number;
  /** Virtual memory, bytes, summed. */
  readonly vramBytes: number;
  /** Resident memory, bytes, summed. */
  readonly rramBytes: number;
  /** Threads, summed. */
  readonly threads: number;
  /** Processes in the group. */
  readonly processes: number;
}

/** File operations in a working directory; names are already checked lexically. */
export interface FileOps {
  /** Creates or truncates the file and writes data (parent directories created). */
  write(workDir: string, name: string, data: Uint8Array): Promise<void>;
  /** Deletes the file; a missing file is not an error. */
  remove(workDir: string, name: string): Promise<void>;
  /** Reads the whole file, up to maxBytes (throws past it). */
  read(workDir: string, name: string, maxBytes: number): Promise<Uint8Array>;
  /** Ensures the directory exists; returns its resolved path. */
  prepareWorkDir(workDir: string): Promise<string>;
}

/** A way to run commands: locally, or on an SSH target. */
export interface Runner {
  /** Starts the command; rejects only for errors of the runner itself (e.g. SSH connection refused). */
  start(request: ExecRequest): Promise<ExecHandle>;
  /**
   * File operations where the command runs, for a runner whose files need no session (the
   * local runner). A runner whose files are per session (SSH) offers them through its
   * session runner and refuses these (see SshRunner).
   */
  readonly files: FileOps;
  /**
   * Releases what the runner holds: an SSH runner's pooled connections, a local runner's
   * spawner. Commands whose spawn was recorded keep running (the next start's recovery
   * kills them); a local command not yet recorded is killed with its group.
   */
  close?(): Promise<void>;
}

/** Where a file a request names lives: a directory and the name relative to it. */
export interface FileLocation {
  readonly dir: string;
  readonly name: string;
}

/** The store's place for one task, as a session runner needs it. */
export interface TaskPlace {
  /** The task's own working directory in the store (a local task whose request names none runs there). */
  readonly ownWorkDir: string;
  /** The directories above it, which a task running as another user must be able to search. */
  readonly parents: readonly string[];
}

/** What a dead node's recovery learns from a session runner about a task left running. */
export interface ReapResult {
  /** True when processes of the task were still there and were killed. */
  readonly killed: boolean;
}

/**
 * Everything the core does with one session type, behind one interface: the core picks the
 * session runner by the task's session type from a table and never asks which one it has.
 */
export interface SessionRunner {
  /**
   * Resolves a task's working directory (confined where this session type confines it),
   * makes it exist, and returns the path its command runs in. Refusals are DrceErrors with
   * their legacy code.
   */
  prepareWorkDir(spec: TaskSpec, place: TaskPlace): Promise<string>;
  /** Where a file the request names lives, for the file operations. */
  fileLocation(spec: TaskSpec, workDir: string, name: string): FileLocation;
  /** File operations where the task's command runs. */
  filesFor(spec: TaskSpec): FileOps;
  /** The user the task's command runs as; undefined: the session's own (the node's, or the SSH login). */
  userFor(spec: TaskSpec): RunAs | undefined;
  /**
   * Starts the command; a local task that runs as another user in its own work dir gets that
   * directory (and what was written in it) handed over first.
   */
  start(request: ExecRequest, place: TaskPlace): Promise<ExecHandle>;
  /** Kills what is left of a task a dead node had running (recovery), when it can tell it is still that task's. */
  reap(status: TaskStatus): Promise<ReapResult>;
}
