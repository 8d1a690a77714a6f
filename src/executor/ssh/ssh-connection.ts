import { connect as netConnect, type Socket } from "node:net";
import type { Client, ConnectConfig } from "ssh2";
import { DrceError, ErrorCode } from "../../domain/errors.js";
import { hostKeyRefused, type HostKeyPolicy } from "./host-key-policy.js";
import { describeTarget, redactSecrets, type SshTarget } from "./ssh-target.js";

/** An ssh2 client. */
export type SshClient = Client;

// ssh2 is loaded by the first connection, not at start: it is megabytes of an idle node's
// memory (BENCHMARKS.md, "Idle memory"), and most nodes never open an SSH session.
// A load that failed is tried again by the next connection, and fails this one as the
// DrceError every handshake failure is.
let ssh2Client: Promise<typeof Client> | undefined;
const loadSshClient = (): Promise<typeof Client> =>
  (ssh2Client ??= import("ssh2").then(
    (loaded) => loaded.default.Client,
    (error: unknown) => {
      ssh2Client = undefined;
      throw new DrceError("unavailable", "the SSH client (ssh2) cannot be loaded on this node", { cause: error });
    },
  ));

/** Options of {@link openSshConnection}. */
export interface SshConnectionOptions {
  /** TCP connect timeout, ms. */
  readonly connectTimeoutMs: number;
  /** SSH handshake and authentication timeout, ms. */
  readonly readyTimeoutMs: number;
  /** Interval of SSH keepalives, ms (0: none). */
  readonly keepaliveIntervalMs: number;
  /** Which host keys are accepted. */
  readonly hostKeys: HostKeyPolicy;
  /** Called once the handshake is done. */
  readonly onOpened: () => void;
  /**
   * Called each time the connection is found unusable: its handshake failed, it erred, ended
   * or closed, or {@link SshConnection.end} was called. It may be called more than once.
   */
  readonly onLost: () => void;
}

/** One SSH connection, from its TCP connect through its handshake to its end. */
export interface SshConnection {
  /** The target it connects to. */
  readonly target: SshTarget;
  /** The client once the handshake is done. */
  readonly client: SshClient | undefined;
  /** True once the connection is unusable (failed, lost or ended); it is never used again. */
  readonly dead: boolean;
  /** Settles once the handshake is done; rejects with a DrceError. */
  readonly ready: Promise<SshClient>;
  /** Ends the connection; a handshake still under way ends as soon as it is done. Idempotent. */
  end(): void;
  /** Resolves once the connection's socket is closed (at once when it has none). */
  socketClosed(): Promise<void>;
}

/**
 * Opens an SSH connection to `target`: TCP within connectTimeoutMs, then the handshake with the
 * host key policy's algorithms and check, and authentication within readyTimeoutMs. Every
 * failure is a DrceError naming the target without its secrets: "invalid" (legacy 103) for a
 * refused host key, failed authentication or an unusable private key, "unavailable" otherwise.
 */
export function openSshConnection(target: SshTarget, options: SshConnectionOptions): SshConnection {
  let client: SshClient | undefined;
  let socket: Socket | undefined;
  let dead = false;

  const lose = (): void => {
    dead = true;
    options.onLost();
  };

  const end = (): void => {
    lose();
    client?.end();
    // A server that does not answer the disconnect must not keep the socket (and the process) alive.
    const held = socket;
    if (held !== undefined) setTimeout(() => held.destroy(), 1000).unref();
  };

  const handshake = async (): Promise<SshClient> => {
    const where = describeTarget(target);
    // Before the TCP connect: a socket the server closes while ssh2 loads would go unseen.
    const Client = await loadSshClient();
    const sock = await new Promise<Socket>((resolve, reject) => {
      const opened = netConnect({ host: target.host, port: target.port });
      const timer = setTimeout(() => {
        opened.destroy();
        reject(new DrceError("unavailable", `cannot connect to ${target.host}:${target.port}: timed out after ${options.connectTimeoutMs} ms`));
      }, options.connectTimeoutMs);
      opened.once("connect", () => {
        clearTimeout(timer);
        opened.removeAllListeners("error");
        resolve(opened);
      });
      opened.once("error", (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new DrceError("unavailable", `cannot connect to ${target.host}:${target.port}: ${error.code ?? error.message}`, { cause: error }));
      });
    });
    sock.setNoDelay(true);
    socket = sock;
    if (dead) {
      sock.destroy();
      throw new DrceError("unavailable", "the SSH runner is closed");
    }

    let hostKeyProblem: DrceError | undefined;
    const hostKeyAlgorithms = await options.hostKeys.algorithms(target);

    const connecting = new Client();
    const config: ConnectConfig = {
      sock,
      username: target.user,
      readyTimeout: options.readyTimeoutMs,
      keepaliveInterval: options.keepaliveIntervalMs,
      keepaliveCountMax: 3,
      algorithms: { serverHostKey: hostKeyAlgorithms },
      hostVerifier: (key: Buffer, verify: (valid: boolean) => void): void => {
        options.hostKeys.check(target, key).then(
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

    return new Promise<SshClient>((resolve, reject) => {
      let settled = false;
      const fail = (error: DrceError): void => {
        if (settled) return;
        settled = true;
        sock.destroy();
        reject(error);
      };
      connecting.once("ready", () => {
        if (settled) return;
        settled = true;
        options.onOpened();
        client = connecting;
        connecting.removeAllListeners("error");
        // After the handshake, any error or end of the connection makes it unusable;
        // channels on it see their own close.
        connecting.on("error", lose);
        connecting.once("end", lose);
        connecting.once("close", lose);
        if (dead) end();
        resolve(connecting);
      });
      connecting.on("error", (error: Error & { level?: string }) => {
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
      connecting.once("close", () => {
        if (hostKeyProblem !== undefined) return fail(hostKeyProblem);
        fail(new DrceError("unavailable", `SSH connection to ${where} closed during the handshake`));
      });
      try {
        connecting.connect(config);
      } catch (error) {
        // ssh2 throws synchronously for a key it cannot parse or decrypt.
        const message = redactSecrets(error instanceof Error ? error.message : String(error), target);
        fail(new DrceError("invalid", `the private key for ${where} cannot be used: ${message}`, { legacyCode: ErrorCode.BadInput }));
      }
    });
  };

  const ready = handshake().catch((error: unknown) => {
    if (error instanceof DrceError) throw error;
    throw new DrceError("unavailable", `SSH connection to ${describeTarget(target)} failed`, { cause: error });
  });
  // The failure is reported to whoever awaits ready; this marks the connection unusable, and
  // keeps the rejection from being unhandled when nobody awaits it.
  ready.catch(lose);

  return {
    target,
    get client() {
      return client;
    },
    get dead() {
      return dead;
    },
    ready,
    end,
    socketClosed: () =>
      new Promise<void>((resolve) => {
        if (socket === undefined || socket.destroyed) return resolve();
        socket.once("close", () => resolve());
      }),
  };
}
