// The spawner's contract: what a node asks of it (SpawnRequest), what it answers (SpawnResult,
// SpawnedProcess) and how it is made (SpawnerOptions). Its two implementations are in spawner.ts.
import type { Socket } from "node:net";
import type { Writable } from "node:stream";

/** What to start; see {@link Spawner.spawn}. */
export interface SpawnRequest {
  readonly file: string;
  readonly args: readonly string[];
  readonly cwd: string;
  /** The whole environment (nothing is inherited). */
  readonly env: Readonly<Record<string, string>>;
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
  /** Where the command's stdout and stderr go: written with backpressure, never ended. */
  readonly stdout: Writable;
  readonly stderr: Writable;
  /**
   * Control groups (directories) the command is to run in from its first instruction: one
   * on cgroup v2, one per hierarchy on v1. Only a spawner whose
   * {@link Spawner.placesIntoCgroups} is true places it; another ignores them.
   */
  readonly cgroupDirs?: readonly string[] | undefined;
}

/**
 * Where a spawned command is in the control groups it was given: none were given (or the
 * spawner cannot place commands), created in its group by clone3(CLONE_INTO_CGROUP), moved
 * there by itself before its exec, or refused by the groups (it runs in its process group
 * only).
 */
export type CgroupPlacement = "none" | "cloned" | "written" | "failed";

/** How a spawned process ended, as child_process reports it. */
export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A started command: the leader of its own process group and session. */
export interface SpawnedProcess {
  readonly pid: number;
  /** Whether the command runs in the control groups of its request; see {@link CgroupPlacement}. */
  readonly cgroupPlacement: CgroupPlacement;
  /** Why the groups refused it (the errno of the move), when {@link cgroupPlacement} is "failed". */
  readonly cgroupError: string | undefined;
  /** Its fd 0: write to it, end it for end of input. */
  readonly stdin: Socket;
  /**
   * Settles once the command's stdout and stderr have ended (every process holding them
   * closed them) and their last bytes are written to the sinks, or were dropped.
   */
  readonly output: Promise<void>;
  /** Stops reading the output (what a process outside the task still holds open). */
  dropOutput(): void;
  /**
   * Tells the spawner the command is accounted for elsewhere (its spawn record is durable):
   * a spawner created with `killOnDisconnect` then leaves its group alone when it goes.
   */
  release(): void;
  /**
   * Settles when the leader ended. Rejects when the spawner stopped before reporting
   * it: the exit status is then unknown, and the caller should kill what is left.
   */
  readonly exit: Promise<ProcessExit>;
}

/** The outcome of a spawn: the process, or why it could not start (errno name and message). */
export type SpawnResult = { readonly ok: true; readonly process: SpawnedProcess } | { readonly ok: false; readonly code: string; readonly message: string };

/** Starts commands through a spawner process; see {@link createSpawner}. */
export interface Spawner {
  spawn(request: SpawnRequest): Promise<SpawnResult>;
  /** The spawner's pid while it runs. */
  readonly pid: number | undefined;
  /** The Unix socket the spawner listens on while it runs (in a 0700 directory of its own). */
  readonly socketPath: string | undefined;
  /** Which spawner runs: the native program, the Node.js one, or undefined before the first spawn. */
  readonly kind: SpawnerKind | undefined;
  /**
   * Tells (choosing the spawner first, if it is not chosen yet) whether commands can be
   * placed into their control groups at their creation ({@link SpawnRequest.cgroupDirs}):
   * true for the native spawner.
   */
  placesIntoCgroups?(): Promise<boolean>;
  /**
   * Stops the spawner. Commands it started keep running, unless it was created with
   * `killOnDisconnect`: then the process groups of those not released are killed as it goes.
   */
  close(): Promise<void>;
}

/** The two spawners: a small C program (native/spawner.c), or a Node.js process (spawner-main.ts). */
export type SpawnerKind = "native" | "node";

/** Options of {@link createSpawner}. */
export interface SpawnerOptions {
  /**
   * "auto" (the default) uses the native spawner, compiled with `cc` on first use, and the
   * Node.js spawner where it cannot be built; "node" always uses the Node.js spawner. The
   * environment variable DRCE_SPAWNER=node sets the default to "node".
   */
  readonly implementation?: "auto" | "node" | undefined;
  /** Where the native spawner's binary is kept (see buildNativeSpawner). */
  readonly cacheDir?: string | undefined;
  /** The PATH the C compiler is looked up in; default: this process's. */
  readonly compilerPath?: string | undefined;
  /** Told once, when the native spawner cannot be built, why the Node.js one runs instead. */
  readonly onFallback?: ((reason: string) => void) | undefined;
  /**
   * When the spawner's channel to this process closes (this process died, or closed the
   * spawner), the spawner kills the process group of every command it started and that was
   * not released (see {@link SpawnedProcess.release}) before it exits: a node killed while
   * spawns were in flight leaves no command its restart cannot know of. Default false: the
   * commands are left to their owner.
   */
  readonly killOnDisconnect?: boolean;
}
