import { DrceError, ErrorCode } from "../../domain/errors.js";
import type { Session } from "../../domain/task.js";
import type { ExecHandle, ExecRequest, FileOps, Runner } from "../runner.js";
import { createSftpFileOps } from "./sftp-files.js";
import { startSshExec } from "./ssh-exec.js";
import { createSshPool, sshTarget, type SshPoolStats } from "./ssh-pool.js";

/** Options of {@link createSshRunner}. */
export interface SshRunnerOptions {
  /** The known_hosts file host keys are checked against (OpenSSH format; hashed entries too). */
  readonly knownHostsFile: string;
  /** Record an unknown host's key in knownHostsFile instead of refusing it. A changed key is always refused. */
  readonly trustOnFirstUse: boolean;
  /** TCP connect timeout, ms (default 10 000). */
  readonly connectTimeoutMs?: number;
  /** SSH handshake and authentication timeout, ms (default 20 000); also bounds the wait for a command to start. */
  readonly readyTimeoutMs?: number;
  /** SSH keepalive interval on pooled connections, ms (default 15 000; 0 disables). */
  readonly keepaliveIntervalMs?: number;
  /** How long an unused pooled connection stays open, ms (default 10 000). */
  readonly poolIdleMs?: number;
  /** Channels used at once on one connection before another is opened (default 8; OpenSSH allows 10). */
  readonly maxChannelsPerConnection?: number;
  /** After a command's leader exits, how long its output may keep flowing before the rest of its group is killed, ms (default 200). */
  readonly drainMs?: number;
}

/** Counters of the SSH runner. */
export type SshRunnerStats = SshPoolStats;

/**
 * A runner for SSH sessions (session type 1).
 *
 * How the core uses it:
 * - `start(request)` reads the target from `request.spec.session`; `request.workDir` must be
 *   the remote path returned by `filesFor(session).prepareWorkDir(...)`.
 * - File operations need the session, so use `filesFor(spec.session)`: the session-free
 *   `files` of {@link Runner} refuse every call with a DrceError ("invalid", legacy 5001,
 *   Connect InvalidArgument), since FileOps calls name no host. The core goes through
 *   the SSH session runner (ssh-session.ts), which always uses `filesFor`.
 * - For a task whose request names no working directory, pass `.drce/tasks/<task id>`
 *   (relative to the remote user's home) to `prepareWorkDir`.
 */
export interface SshRunner extends Runner {
  /**
   * File operations over SFTP on the host of an SSH session, on the pooled connection.
   * Throws a DrceError ("invalid") for a session without a user or a credential.
   */
  filesFor(session: Session): FileOps;
  /** Pool counters: connections opened so far and open now, channels open now. */
  stats(): SshRunnerStats;
  /** Closes every pooled connection; running commands lose their channel. */
  close(): Promise<void>;
}

function positive(name: string, value: number | undefined, fallback: number, allowZero = false): number {
  const result = value ?? fallback;
  if (!Number.isFinite(result) || result < 0 || (!allowZero && result === 0)) {
    throw new DrceError("invalid", `SSH runner option ${name} must be a ${allowZero ? "non-negative" : "positive"} number`);
  }
  return result;
}

/**
 * Creates the SSH runner. Connections are made on first use and pooled per host, port,
 * user and credentials; secrets are never logged nor put in error messages.
 * Commands run under a POSIX sh wrapper that reports the remote pid and process group;
 * termination signals the whole remote group through `kill` on a second channel.
 */
export function createSshRunner(options: SshRunnerOptions): SshRunner {
  if (options.knownHostsFile === "") throw new DrceError("invalid", "SSH runner option knownHostsFile must name a file");
  const readyTimeoutMs = positive("readyTimeoutMs", options.readyTimeoutMs, 20_000);
  const pool = createSshPool({
    knownHostsFile: options.knownHostsFile,
    trustOnFirstUse: options.trustOnFirstUse,
    connectTimeoutMs: positive("connectTimeoutMs", options.connectTimeoutMs, 10_000),
    readyTimeoutMs,
    keepaliveIntervalMs: positive("keepaliveIntervalMs", options.keepaliveIntervalMs, 15_000, true),
    poolIdleMs: positive("poolIdleMs", options.poolIdleMs, 10_000, true),
    maxChannelsPerConnection: Math.floor(positive("maxChannelsPerConnection", options.maxChannelsPerConnection, 8)),
  });
  const timings = {
    startTimeoutMs: readyTimeoutMs,
    drainMs: positive("drainMs", options.drainMs, 200, true),
    closeWaitMs: 2000,
  };
  // FileOps calls name a directory, not a host: the SSH runner's files are per session.
  const noSession = (): Promise<never> =>
    Promise.reject(new DrceError("invalid", "SSH file operations need the task's session: use filesFor(session)", { legacyCode: ErrorCode.NodeModeNotSupported }));

  return {
    async start(request: ExecRequest): Promise<ExecHandle> {
      return startSshExec(pool, sshTarget(request.spec.session), request, timings);
    },
    files: {
      write: noSession,
      remove: noSession,
      read: noSession,
      prepareWorkDir: noSession,
    },
    filesFor(session: Session): FileOps {
      return createSftpFileOps(pool, sshTarget(session));
    },
    stats: () => pool.stats(),
    close: () => pool.close(),
  };
}
