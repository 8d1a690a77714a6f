import { createHash } from "node:crypto";
import { DrceError } from "../../domain/errors.js";
import type { Session } from "../../domain/task.js";

/*
 * An SSH session as the executor uses it: its defaults applied, described for messages
 * without its secrets, and keyed for the pool.
 */

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

/**
 * The key the pool keeps a target's connections under: host, port, user and a digest of the
 * credentials and pinned fingerprint, so that two sessions share a connection only when they
 * would authenticate the same way (the secrets themselves are never kept in the key).
 */
export function targetKey(target: SshTarget): string {
  return [
    target.host,
    target.port,
    target.user,
    createHash("sha256")
      .update(JSON.stringify([target.password, target.privateKey, target.passphrase, target.hostFingerprint]))
      .digest("hex"),
  ].join(":");
}
