/**
 * The messages between a node and its spawner (see spawner.ts): JSON over the IPC channel
 * of a forked Node.js process. Standard streams do not travel in messages: the node
 * connects one Unix socket per stream to the spawner's listening socket and opens it with
 * a {@link streamHeader}, and the spawner hands the accepted sockets to the command as its
 * stdin, stdout and stderr. Every spawn gets exactly one answer, "spawned" or "failed".
 * The native spawner takes the streams the same way, and the same messages as binary
 * frames (spawner-frames.ts).
 */

/** Node to spawner: start a command. */
export interface SpawnMessage {
  readonly type: "spawn";
  /** The node's number for this spawn, echoed in every answer about it. */
  readonly id: number;
  /** Secret the three stream connections of this spawn open with (hex, {@link tokenLength} characters). */
  readonly token: string;
  readonly file: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly uid?: number;
  readonly gid?: number;
}

/** Node to spawner: forget a spawn whose streams could not all be connected (no answer follows). */
export interface CancelMessage {
  readonly type: "cancel";
  readonly token: string;
}

/**
 * Node to spawner: the command of spawn `id` is accounted for (its spawn record is durable,
 * so the node's restart finds and kills it); the spawner no longer kills its group when the
 * channel closes. No answer follows.
 */
export interface ReleaseMessage {
  readonly type: "release";
  readonly id: number;
}

/** Spawner to node. */
export type SpawnerMessage =
  /** Listening; spawns may be sent. */
  | { readonly type: "ready" }
  /** The command runs, its own process group leader (setsid), with this pid. */
  | { readonly type: "spawned"; readonly id: number; readonly pid: number }
  /** The command could not be started; `code` is the errno name (ENOENT, EACCES, ...). */
  | { readonly type: "failed"; readonly id: number; readonly code: string; readonly message: string }
  /** The command's process ended (its streams may still be open in its children). */
  | { readonly type: "exit"; readonly id: number; readonly code: number | null; readonly signal: NodeJS.Signals | null };

/**
 * How long the spawner keeps a spawn's message or connections waiting for the rest: then
 * it drops them and answers "failed" (ETIMEDOUT). A connection that has not sent its
 * header by {@link headerTimeoutMs} is dropped.
 */
export const pendingTimeoutMs = 10_000;
export const headerTimeoutMs = 5_000;

/** Hex characters of a spawn's token: 128 random bits. */
export const tokenLength = 32;

/** The bytes a stream connection starts with: the spawn's token, then 0, 1 or 2 (stdin, stdout, stderr). */
export function streamHeader(token: string, fd: 0 | 1 | 2): string {
  return `${token}${fd}`;
}

/** Length of {@link streamHeader} in bytes. */
export const headerLength = tokenLength + 1;
