import type { ClientChannel, SFTPWrapper } from "ssh2";
import { DrceError } from "../../domain/errors.js";
import { createHostKeyPolicy } from "./host-key-policy.js";
import { openSshConnection, type SshClient, type SshConnection } from "./ssh-connection.js";
import { describeTarget, redactSecrets, targetKey, type SshTarget } from "./ssh-target.js";

// The SSH runner takes its target from the pool's module.
export { sshTarget, type SshTarget } from "./ssh-target.js";

/** Options of {@link createSshPool}. */
export interface SshPoolOptions {
  /** known_hosts file checked (and, with trustOnFirstUse, appended to). */
  readonly knownHostsFile: string;
  /** Record the key of a host that known_hosts does not know, instead of refusing it. */
  readonly trustOnFirstUse: boolean;
  /** TCP connect timeout, ms. */
  readonly connectTimeoutMs: number;
  /** SSH handshake and authentication timeout, ms. */
  readonly readyTimeoutMs: number;
  /** Interval of SSH keepalives on pooled connections, ms (0: none). */
  readonly keepaliveIntervalMs: number;
  /** How long an unused connection stays open, ms. */
  readonly poolIdleMs: number;
  /** Channels opened at once on one connection before another connection is made. */
  readonly maxChannelsPerConnection: number;
}

/** Counters of an SSH pool, for tests and metrics. */
export interface SshPoolStats {
  /** Connections made since the pool was created (handshake completed). */
  readonly connectionsOpened: number;
  /** Connections open now. */
  readonly connectionsOpen: number;
  /** Channels open now, over all connections. */
  readonly channelsOpen: number;
}

/** A channel slot on a pooled connection; release it once the channel is closed. */
export interface SshLease {
  /** The connection. */
  readonly client: SshClient;
  /** Gives the slot back; the connection may then idle out. Idempotent. */
  release(): void;
}

/** Pooled SSH connections, keyed by host, port, user and credentials. */
export interface SshPool {
  /**
   * Opens an exec channel running `command`, on a new connection when a pooled one turns out
   * dead. `setup` runs synchronously as the channel opens: a short command's exit status may
   * arrive in the same read as the open confirmation, and an event emitted before a listener
   * exists is lost.
   */
  exec(target: SshTarget, command: string, setup: (channel: ClientChannel) => void): Promise<{ readonly channel: ClientChannel; readonly lease: SshLease }>;
  /** Runs `command` to its end and returns its exit code (null after a signal) and stdout. */
  run(target: SshTarget, command: string): Promise<{ readonly code: number | null; readonly stdout: string }>;
  /** Runs `fn` with an SFTP session, closed afterwards. */
  withSftp<T>(target: SshTarget, fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T>;
  /** Counters. */
  stats(): SshPoolStats;
  /** Closes every connection; later calls fail. */
  close(): Promise<void>;
}

/**
 * A connection in the pool, with its channel slots: how many are in use, how many the server
 * allows, and the timer that ends it once it has been idle for poolIdleMs.
 */
interface PooledConnection {
  readonly key: string;
  readonly connection: SshConnection;
  channels: number;
  /** Lowered when the server refuses a channel (its MaxSessions). */
  maxChannels: number;
  idleTimer: NodeJS.Timeout | undefined;
}

/**
 * Creates a pool of SSH connections, keyed by target; each connection carries up to
 * maxChannelsPerConnection channels and ends once idle for poolIdleMs. Nothing connects until
 * the first call.
 */
export function createSshPool(options: SshPoolOptions): SshPool {
  const pools = new Map<string, PooledConnection[]>();
  const hostKeys = createHostKeyPolicy(options);
  let connectionsOpened = 0;
  let closed = false;

  /** Takes a connection out of the pool (it is dead or ending). Idempotent. */
  const drop = (pooled: PooledConnection): void => {
    if (pooled.idleTimer !== undefined) clearTimeout(pooled.idleTimer);
    pooled.idleTimer = undefined;
    const list = pools.get(pooled.key);
    if (list !== undefined) {
      const index = list.findIndex((c) => c === pooled);
      if (index >= 0) list.splice(index, 1);
      if (list.length === 0) pools.delete(pooled.key);
    }
  };

  const openConnection = (target: SshTarget, key: string): PooledConnection => {
    const pooled: PooledConnection = {
      key,
      connection: openSshConnection(target, {
        connectTimeoutMs: options.connectTimeoutMs,
        readyTimeoutMs: options.readyTimeoutMs,
        keepaliveIntervalMs: options.keepaliveIntervalMs,
        hostKeys,
        onOpened: () => (connectionsOpened += 1),
        onLost: () => drop(pooled),
      }),
      channels: 0,
      maxChannels: options.maxChannelsPerConnection,
      idleTimer: undefined,
    };
    return pooled;
  };

  /** Reserves a channel slot on a live connection of the target, making one if needed. */
  const acquire = async (target: SshTarget): Promise<{ conn: PooledConnection; client: SshClient; lease: SshLease }> => {
    if (closed) throw new DrceError("unavailable", "the SSH runner is closed");
    const key = targetKey(target);
    let list = pools.get(key);
    if (list === undefined) {
      list = [];
      pools.set(key, list);
    }
    let conn = list.find((c) => !c.connection.dead && c.channels < c.maxChannels);
    if (conn === undefined) {
      conn = openConnection(target, key);
      list.push(conn);
    }
    conn.channels += 1;
    if (conn.idleTimer !== undefined) {
      clearTimeout(conn.idleTimer);
      conn.idleTimer = undefined;
    }
    const reserved = conn;
    let released = false;
    const lease = (client: SshClient): SshLease => ({
      client,
      release: () => {
        if (released) return;
        released = true;
        reserved.channels -= 1;
        if (reserved.channels === 0 && !reserved.connection.dead) {
          reserved.idleTimer = setTimeout(() => reserved.connection.end(), options.poolIdleMs);
          reserved.idleTimer.unref();
        }
      },
    });
    let client: SshClient;
    try {
      client = await reserved.connection.ready;
    } catch (error) {
      released = true;
      reserved.channels -= 1;
      throw error;
    }
    return { conn: reserved, client, lease: lease(client) };
  };

  /**
   * Opens a channel with `open`, on a pooled connection. A connection that turns out dead
   * (closed before we noticed) is dropped and the open is tried once more on a new one; a
   * refused channel on a busy connection (the server's MaxSessions) lowers that connection's
   * limit and tries another.
   */
  const openChannel = async <T>(
    target: SshTarget,
    open: (client: SshClient, callback: (error: Error | undefined, channel: T) => void) => void,
    setup: (channel: T, lease: SshLease) => void,
  ): Promise<{ channel: T; lease: SshLease }> => {
    let attempts = 0;
    for (;;) {
      attempts += 1;
      const { conn, client, lease } = await acquire(target);
      try {
        const channel = await new Promise<T>((resolve, reject) => {
          try {
            open(client, (error, channel) => {
              if (error !== undefined && error !== null) return reject(error);
              setup(channel, lease);
              resolve(channel);
            });
          } catch (error) {
            reject(error);
          }
        });
        return { channel, lease };
      } catch (error) {
        lease.release();
        const info = error as Error & { reason?: number };
        const busy = info.reason !== undefined && conn.channels > 0 && !conn.connection.dead;
        const dead = conn.connection.dead || /Not connected|No response from server/i.test(info.message);
        if (busy) {
          conn.maxChannels = Math.max(1, conn.channels);
        } else if (dead) {
          // The connection died before we noticed: drop it and make a new one.
          conn.connection.end();
        }
        if ((!busy && !dead) || attempts >= 3) {
          throw new DrceError("unavailable", `cannot open an SSH channel to ${describeTarget(target)}: ${redactSecrets(info.message, target)}`, { cause: error });
        }
      }
    }
  };

  const exec: SshPool["exec"] = (target, command, setup) =>
    openChannel<ClientChannel>(
      target,
      (client, callback) => client.exec(command, callback),
      (channel, lease) => {
        channel.once("close", () => lease.release());
        setup(channel);
      },
    );

  const run: SshPool["run"] = async (target, command) => {
    let result!: Promise<{ code: number | null; stdout: string }>;
    await exec(target, command, (channel) => {
      result = new Promise((resolve) => {
        const out: Buffer[] = [];
        let code: number | null = null;
        channel.on("data", (data: Buffer) => out.push(data));
        channel.stderr.resume();
        channel.on("error", () => undefined); // a channel error is followed by its close, which ends the run with the code seen so far
        channel.on("exit", (c: number | null) => {
          code = c;
        });
        channel.once("close", () => resolve({ code, stdout: Buffer.concat(out).toString("utf8") }));
        channel.end();
      });
    });
    return result;
  };

  const withSftp: SshPool["withSftp"] = async (target, fn) => {
    const { channel: sftp, lease } = await openChannel<SFTPWrapper>(
      target,
      (client, callback) => client.sftp(callback),
      (channel) => channel.on("error", () => undefined), // an SFTP failure rejects the operation that met it; the session event must not crash the node
    );
    try {
      return await fn(sftp);
    } finally {
      sftp.end();
      lease.release();
    }
  };

  return {
    exec,
    run,
    withSftp,
    stats: () => {
      let connectionsOpen = 0;
      let channelsOpen = 0;
      for (const list of pools.values()) {
        for (const conn of list) {
          if (conn.connection.client === undefined || conn.connection.dead) continue;
          connectionsOpen += 1;
          channelsOpen += conn.channels;
        }
      }
      return { connectionsOpened, connectionsOpen, channelsOpen };
    },
    close: async () => {
      closed = true;
      const all = [...pools.values()].flat();
      await Promise.all(
        all.map(async ({ connection }) => {
          const client = connection.client;
          connection.end();
          if (client === undefined) {
            // A handshake still under way: end its client once it is done; one that fails is already over.
            await connection.ready.then(
              (c) => c.end(),
              () => undefined,
            );
            return;
          }
          await connection.socketClosed();
        }),
      );
    },
  };
}
