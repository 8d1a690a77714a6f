import { createHash } from "node:crypto";
import { connect as netConnect, type Socket } from "node:net";
import ssh2 from "ssh2";
import type { ClientChannel, ConnectConfig, ServerHostKeyAlgorithm, SFTPWrapper } from "ssh2";
import { DrceError, ErrorCode } from "../../domain/errors.js";
import type { Session } from "../../domain/task.js";
import {
  knownHostsName,
  knownKeyTypes,
  readKnownHosts,
  recordHostKey,
  sameFingerprint,
  sshFingerprint,
  verifyHostKey,
} from "./known-hosts.js";

const { Client } = ssh2;
type Client = InstanceType<typeof Client>;

/** An SSH session with its defaults applied (host "" is 127.0.0.1, port 0 is 22). */
export interface SshTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly privateKey: string;
  readonly passphrase: string;
  readonly hostFingerprint: string;
}

/** Applies the defaults of an SSH session and checks that it names a user and a credential. */
export function sshTarget(session: Session): SshTarget {
  if (session.type !== "ssh") throw new DrceError("internal", "the SSH runner was given a local session");
  if (session.user === "") throw new DrceError("invalid", "an SSH session needs a user");
  if (session.password === "" && session.privateKey === "") {
    throw new DrceError("invalid", "an SSH session needs a password or a private key");
  }
  const port = session.port === 0 ? 22 : session.port;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new DrceError("invalid", `SSH port ${session.port} is out of range`);
  return {
    host: session.host === "" ? "127.0.0.1" : session.host,
    port,
    user: session.user,
    password: session.password,
    privateKey: session.privateKey,
    passphrase: session.passphrase,
    hostFingerprint: session.hostFingerprint,
  };
}

/** "user@host:port", for messages; never holds a secret. */
export function describeTarget(target: SshTarget): string {
  return `${target.user}@${target.host}:${target.port}`;
}

/** Replaces any secret of the target that an underlying message might echo. */
export function redactSecrets(message: string, target: SshTarget): string {
  let out = message;
  for (const secret of [target.password, target.privateKey, target.passphrase]) {
    if (secret.length >= 3) out = out.split(secret).join("[redacted]");
  }
  return out;
}

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
  readonly client: Client;
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

interface ConnectionState {
  readonly key: string;
  readonly target: SshTarget;
  client: Client | undefined;
  socket: Socket | undefined;
  channels: number;
  /** Lowered when the server refuses a channel (its MaxSessions). */
  maxChannels: number;
  dead: boolean;
  idleTimer: NodeJS.Timeout | undefined;
}

interface PooledConnection extends ConnectionState {
  /** Settles once the handshake is done; rejects with a DrceError. */
  readonly ready: Promise<Client>;
}

/** Default host key algorithms of ssh2, in its order; host key types known for a host go first. */
const defaultHostKeyAlgorithms: readonly ServerHostKeyAlgorithm[] = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa",
];

function algorithmsForKeyType(type: string): ServerHostKeyAlgorithm[] {
  if (type === "ssh-rsa") return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"];
  return defaultHostKeyAlgorithms.includes(type as ServerHostKeyAlgorithm) ? [type as ServerHostKeyAlgorithm] : [];
}

/** Creates a pool of SSH connections. Nothing connects until the first call. */
export function createSshPool(options: SshPoolOptions): SshPool {
  const pools = new Map<string, PooledConnection[]>();
  let connectionsOpened = 0;
  let closed = false;
  // Appends to known_hosts one at a time, so two first connections do not write twice.
  let knownHostsQueue: Promise<unknown> = Promise.resolve();

  const keyOf = (target: SshTarget): string =>
    [
      target.host,
      target.port,
      target.user,
      createHash("sha256")
        .update(JSON.stringify([target.password, target.privateKey, target.passphrase, target.hostFingerprint]))
        .digest("hex"),
    ].join(":");

  const drop = (conn: ConnectionState): void => {
    if (conn.idleTimer !== undefined) clearTimeout(conn.idleTimer);
    conn.idleTimer = undefined;
    conn.dead = true;
    const list = pools.get(conn.key);
    if (list !== undefined) {
      const index = list.findIndex((c) => c === conn);
      if (index >= 0) list.splice(index, 1);
      if (list.length === 0) pools.delete(conn.key);
    }
  };

  const endConnection = (conn: ConnectionState): void => {
    drop(conn);
    conn.client?.end();
    // A server that does not answer the disconnect must not keep the socket (and the process) alive.
    const socket = conn.socket;
    if (socket !== undefined) setTimeout(() => socket.destroy(), 1000).unref();
  };

  const checkHostKey = async (target: SshTarget, key: Buffer): Promise<DrceError | undefined> => {
    const where = `${target.host}:${target.port}`;
    const fingerprint = sshFingerprint(key);
    if (target.hostFingerprint !== "") {
      if (sameFingerprint(target.hostFingerprint, fingerprint)) return undefined;
      return hostKeyRefused(`host key of ${where} does not match the pinned fingerprint (offered ${fingerprint})`);
    }
    const name = knownHostsName(target.host, target.port);
    const verdict = verifyHostKey(await readKnownHosts(options.knownHostsFile), name, key);
    switch (verdict.kind) {
      case "known":
        return undefined;
      case "revoked":
        return hostKeyRefused(`host key of ${where} is revoked (${fingerprint})`);
      case "changed":
        return hostKeyRefused(`host key of ${where} changed (offered ${fingerprint}, known_hosts has a different key)`);
      case "unknown":
        if (!options.trustOnFirstUse) return hostKeyRefused(`host key of ${where} is not known (${fingerprint})`);
        {
          const append = knownHostsQueue.then(() => recordHostKey(options.knownHostsFile, name, key));
          knownHostsQueue = append.catch(() => undefined);
          await append;
        }
        return undefined;
    }
  };

  const openConnection = (target: SshTarget, key: string): PooledConnection => {
    const state: ConnectionState = {
      key,
      target,
      client: undefined,
      socket: undefined,
      channels: 0,
      maxChannels: options.maxChannelsPerConnection,
      dead: false,
      idleTimer: undefined,
    };
    const ready = handshake(state).catch((error: unknown) => {
      if (error instanceof DrceError) throw error;
      throw new DrceError("unavailable", `SSH connection to ${describeTarget(target)} failed`, { cause: error });
    });
    const conn: PooledConnection = Object.assign(state, { ready });
    // The failure is reported to whoever awaits ready; this only keeps it from being unhandled.
    conn.ready.catch(() => drop(conn));
    return conn;
  };

  const handshake = async (conn: ConnectionState): Promise<Client> => {
    const target = conn.target;
    const where = describeTarget(target);
    const socket = await new Promise<Socket>((resolve, reject) => {
      const sock = netConnect({ host: target.host, port: target.port });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new DrceError("unavailable", `cannot connect to ${target.host}:${target.port}: timed out after ${options.connectTimeoutMs} ms`));
      }, options.connectTimeoutMs);
      sock.once("connect", () => {
        clearTimeout(timer);
        sock.removeAllListeners("error");
        resolve(sock);
      });
      sock.once("error", (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new DrceError("unavailable", `cannot connect to ${target.host}:${target.port}: ${error.code ?? error.message}`, { cause: error }));
      });
    });
    socket.setNoDelay(true);
    conn.socket = socket;
    if (conn.dead) {
      socket.destroy();
      throw new DrceError("unavailable", "the SSH runner is closed");
    }

    let hostKeyProblem: DrceError | undefined;
    const name = knownHostsName(target.host, target.port);
    let preferred: ServerHostKeyAlgorithm[] = [];
    if (target.hostFingerprint === "") {
      // Offer the key types known_hosts holds first, as OpenSSH does, so that a host known by
      // its RSA key is not refused for offering a (never recorded) ed25519 key.
      const known = await readKnownHosts(options.knownHostsFile).catch(() => []);
      preferred = knownKeyTypes(known, name).flatMap(algorithmsForKeyType);
    }
    const hostKeyAlgorithms = [...new Set([...preferred, ...defaultHostKeyAlgorithms])];

    const client = new Client();
    const config: ConnectConfig = {
      sock: socket,
      username: target.user,
      readyTimeout: options.readyTimeoutMs,
      keepaliveInterval: options.keepaliveIntervalMs,
      keepaliveCountMax: 3,
      algorithms: { serverHostKey: hostKeyAlgorithms },
      hostVerifier: (key: Buffer, verify: (valid: boolean) => void): void => {
        checkHostKey(target, key).then(
          (problem) => {
            hostKeyProblem = problem;
            verify(problem === undefined);
          },
          (error: unknown) => {
            hostKeyProblem = hostKeyRefused(`host key of ${target.host}:${target.port} cannot be checked: known_hosts unreadable`, error);
            verify(false);
          },
        );
      },
    };
    if (target.password !== "") config.password = target.password;
    if (target.privateKey !== "") config.privateKey = target.privateKey;
    if (target.passphrase !== "") config.passphrase = target.passphrase;

    return new Promise<Client>((resolve, reject) => {
      let settled = false;
      const fail = (error: DrceError): void => {
        if (settled) return;
        settled = true;
        socket.destroy();
        reject(error);
      };
      client.once("ready", () => {
        if (settled) return;
        settled = true;
        connectionsOpened += 1;
        conn.client = client;
        client.removeAllListeners("error");
        // After the handshake, any error or end of the connection takes it out of the pool;
        // channels on it see their own close.
        client.on("error", () => drop(conn));
        client.once("end", () => drop(conn));
        client.once("close", () => drop(conn));
        if (conn.dead) endConnection(conn);
        resolve(client);
      });
      client.on("error", (error: Error & { level?: string }) => {
        if (hostKeyProblem !== undefined) return fail(hostKeyProblem);
        const reason = redactSecrets(error.message, target);
        if (error.level === "client-authentication") {
          return fail(new DrceError("invalid", `authentication as ${where} failed`, { legacyCode: ErrorCode.BadInput }));
        }
        if (error.level === "client-timeout") {
          return fail(new DrceError("unavailable", `SSH handshake with ${target.host}:${target.port} timed out after ${options.readyTimeoutMs} ms`));
        }
        return fail(new DrceError("unavailable", `SSH connection to ${where} failed: ${reason}`));
      });
      client.once("close", () => {
        if (hostKeyProblem !== undefined) return fail(hostKeyProblem);
        fail(new DrceError("unavailable", `SSH connection to ${where} closed during the handshake`));
      });
      try {
        client.connect(config);
      } catch (error) {
        // ssh2 throws synchronously for a key it cannot parse or decrypt.
        const message = redactSecrets(error instanceof Error ? error.message : String(error), target);
        fail(new DrceError("invalid", `the private key for ${where} cannot be used: ${message}`, { legacyCode: ErrorCode.BadInput }));
      }
    });
  };

  /** Reserves a channel slot on a live connection of the target, making one if needed. */
  const acquire = async (target: SshTarget): Promise<{ conn: PooledConnection; client: Client; lease: SshLease }> => {
    if (closed) throw new DrceError("unavailable", "the SSH runner is closed");
    const key = keyOf(target);
    let list = pools.get(key);
    if (list === undefined) {
      list = [];
      pools.set(key, list);
    }
    let conn = list.find((c) => !c.dead && c.channels < c.maxChannels);
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
    const lease = (client: Client): SshLease => ({
      client,
      release: () => {
        if (released) return;
        released = true;
        reserved.channels -= 1;
        if (reserved.channels === 0 && !reserved.dead) {
          reserved.idleTimer = setTimeout(() => endConnection(reserved), options.poolIdleMs);
          reserved.idleTimer.unref();
        }
      },
    });
    let client: Client;
    try {
      client = await reserved.ready;
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
    open: (client: Client, callback: (error: Error | undefined, channel: T) => void) => void,
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
        const busy = info.reason !== undefined && conn.channels > 0 && !conn.dead;
        const dead = conn.dead || /Not connected|No response from server/i.test(info.message);
        if (busy) {
          conn.maxChannels = Math.max(1, conn.channels);
        } else if (dead) {
          // The connection died before we noticed: drop it and make a new one.
          endConnection(conn);
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
        channel.on("error", () => undefined);
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
      (channel) => channel.on("error", () => undefined),
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
          if (conn.client === undefined || conn.dead) continue;
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
        all.map(async (conn) => {
          const client = conn.client;
          endConnection(conn);
          if (client === undefined) {
            await conn.ready.then(
              (c) => c.end(),
              () => undefined,
            );
            return;
          }
          await new Promise<void>((resolve) => {
            const socket = conn.socket;
            if (socket === undefined || socket.destroyed) return resolve();
            socket.once("close", () => resolve());
          });
        }),
      );
    },
  };
}

function hostKeyRefused(message: string, cause?: unknown): DrceError {
  return new DrceError("invalid", message, cause === undefined ? { legacyCode: ErrorCode.BadInput } : { legacyCode: ErrorCode.BadInput, cause });
}
