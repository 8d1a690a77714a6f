import type { ServerHostKeyAlgorithm } from "ssh2";
import { DrceError, ErrorCode } from "../../domain/errors.js";
import { knownHostsName, knownKeyTypes, readKnownHosts, recordHostKey, sameFingerprint, sshFingerprint, verifyHostKey } from "./known-hosts.js";
import type { SshTarget } from "./ssh-target.js";

/** Options of {@link createHostKeyPolicy}. */
export interface HostKeyPolicyOptions {
  /** known_hosts file checked (and, with trustOnFirstUse, appended to). */
  readonly knownHostsFile: string;
  /** Record the key of a host that known_hosts does not know, instead of refusing it. */
  readonly trustOnFirstUse: boolean;
}

/** Which host keys the node accepts, and which key types it asks for first. */
export interface HostKeyPolicy {
  /**
   * The host key algorithms to offer `target`, the key types known_hosts holds for it first
   * (as OpenSSH does), so that a host known by its RSA key is not refused for offering a
   * never recorded ed25519 key. A pinned fingerprint needs no known_hosts: ssh2's order then.
   */
  algorithms(target: SshTarget): Promise<ServerHostKeyAlgorithm[]>;
  /**
   * Checks the key `target` offered against its pinned fingerprint, else known_hosts: undefined
   * when it is accepted, else the DrceError (legacy 103) to refuse the connection with. With
   * trust on first use an unknown key is recorded, one append at a time.
   */
  check(target: SshTarget, key: Buffer): Promise<DrceError | undefined>;
}

/** Default host key algorithms of ssh2, in its order; host key types known for a host go first. */
export const defaultHostKeyAlgorithms: readonly ServerHostKeyAlgorithm[] = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa",
];

/** The algorithms that verify a key of `type` (an RSA key signs with three). */
export function algorithmsForKeyType(type: string): ServerHostKeyAlgorithm[] {
  if (type === "ssh-rsa") return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"];
  return defaultHostKeyAlgorithms.includes(type as ServerHostKeyAlgorithm) ? [type as ServerHostKeyAlgorithm] : [];
}

/** A refused host key: legacy 103, the caller's input being wrong (or the host an impostor). */
export function hostKeyRefused(message: string, cause?: unknown): DrceError {
  return new DrceError("invalid", message, cause === undefined ? { legacyCode: ErrorCode.BadInput } : { legacyCode: ErrorCode.BadInput, cause });
}

/** Creates the host key policy of an SSH pool. */
export function createHostKeyPolicy(options: HostKeyPolicyOptions): HostKeyPolicy {
  // Appends to known_hosts one at a time, so two first connections do not write twice.
  let knownHostsQueue: Promise<unknown> = Promise.resolve();

  return {
    async algorithms(target) {
      let preferred: ServerHostKeyAlgorithm[] = [];
      if (target.hostFingerprint === "") {
        // An unreadable known_hosts costs only the order here: check() refuses the key for it.
        const known = await readKnownHosts(options.knownHostsFile).catch(() => []);
        preferred = knownKeyTypes(known, knownHostsName(target.host, target.port)).flatMap(algorithmsForKeyType);
      }
      return [...new Set([...preferred, ...defaultHostKeyAlgorithms])];
    },

    async check(target, key) {
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
            knownHostsQueue = append.catch(() => undefined); // a failed append is this connection's refusal (awaited below); the next append still runs
            await append;
          }
          return undefined;
      }
    },
  };
}
