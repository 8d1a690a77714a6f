import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DrceError, ErrorCode } from "../../src/domain/errors.js";
import { createHostKeyPolicy, defaultHostKeyAlgorithms } from "../../src/executor/ssh/host-key-policy.js";
import { knownHostsLine, sshFingerprint } from "../../src/executor/ssh/known-hosts.js";
import { openSshConnection, type SshConnectionOptions } from "../../src/executor/ssh/ssh-connection.js";
import { describeTarget, redactSecrets, sshTarget, targetKey, type SshTarget } from "../../src/executor/ssh/ssh-target.js";
import { sshdUnavailableReason, startSshd, type TestSshd } from "../helpers/sshd.js";

/** An SSH public key blob of `type`: the type name and random key bytes, each length-prefixed. */
function keyBlob(type: string): Buffer {
  const part = (bytes: Buffer): Buffer => Buffer.concat([Buffer.from([0, 0, 0, bytes.length]), bytes]);
  return Buffer.concat([part(Buffer.from(type)), part(randomBytes(32))]);
}

const target = (extra: Partial<SshTarget> = {}): SshTarget => ({ host: "127.0.0.1", port: 2222, user: "alice", password: "s3cret-pw", privateKey: "", passphrase: "", hostFingerprint: "", ...extra });

describe("an SSH target", () => {
  it("takes the defaults of a session and refuses one without a user or a credential", () => {
    const session = { type: "ssh" as const, host: "", port: 0, user: "u", password: "p", privateKey: "", passphrase: "", hostFingerprint: "" };
    expect(sshTarget(session)).toMatchObject({ host: "127.0.0.1", port: 22 });
    expect(() => sshTarget({ ...session, user: "" })).toThrow(DrceError);
    expect(() => sshTarget({ ...session, password: "" })).toThrow(/password or a private key/);
    expect(() => sshTarget({ ...session, port: 70000 })).toThrow(/out of range/);
  });

  it("is described and keyed without its secrets", () => {
    const t = target();
    expect(describeTarget(t)).toBe("alice@127.0.0.1:2222");
    expect(redactSecrets("bad password s3cret-pw", t)).toBe("bad password [redacted]");
    expect(targetKey(t)).not.toContain("s3cret-pw");
    expect(targetKey(t)).toBe(targetKey(target()));
    expect(targetKey(t)).not.toBe(targetKey(target({ password: "other" })));
  });
});

describe("the host key policy", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "drce-host-keys-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("accepts the pinned fingerprint only", async () => {
    const key = keyBlob("ssh-ed25519");
    const policy = createHostKeyPolicy({ knownHostsFile: join(dir, "none"), trustOnFirstUse: false });
    expect(await policy.check(target({ hostFingerprint: sshFingerprint(key) }), key)).toBeUndefined();
    const refused = await policy.check(target({ hostFingerprint: sshFingerprint(keyBlob("ssh-ed25519")) }), key);
    expect(refused).toBeInstanceOf(DrceError);
    expect(refused?.legacyCode).toBe(ErrorCode.BadInput);
    expect(refused?.message).toMatch(/does not match the pinned fingerprint/);
  });

  it("refuses an unknown or a changed key, and offers the known key type first", async () => {
    const file = join(dir, "known_hosts");
    const rsa = keyBlob("ssh-rsa");
    await writeFile(file, knownHostsLine("[127.0.0.1]:2222", rsa));
    const policy = createHostKeyPolicy({ knownHostsFile: file, trustOnFirstUse: false });
    expect(await policy.check(target(), rsa)).toBeUndefined();
    expect((await policy.check(target(), keyBlob("ssh-rsa")))?.message).toMatch(/changed/);
    expect((await policy.check(target({ port: 2223 }), rsa))?.message).toMatch(/is not known/);
    const offered = await policy.algorithms(target());
    expect(offered.slice(0, 3)).toEqual(["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]);
    expect([...offered].sort()).toEqual([...defaultHostKeyAlgorithms].sort());
  });

  it("records an unknown key once with trust on first use, even for two first connections at once", async () => {
    const file = join(dir, "tofu_hosts");
    const key = keyBlob("ssh-ed25519");
    const policy = createHostKeyPolicy({ knownHostsFile: file, trustOnFirstUse: true });
    expect(await Promise.all([policy.check(target(), key), policy.check(target(), key)])).toEqual([undefined, undefined]);
    expect(await readFile(file, "utf8")).toBe(knownHostsLine("[127.0.0.1]:2222", key));
  });
});

describe("an SSH connection", () => {
  const options = (lost: string[]): SshConnectionOptions => ({
    connectTimeoutMs: 5000,
    readyTimeoutMs: 5000,
    keepaliveIntervalMs: 0,
    hostKeys: createHostKeyPolicy({ knownHostsFile: join(tmpdir(), "drce-no-such-known-hosts"), trustOnFirstUse: false }),
    onOpened: () => lost.push("opened"),
    onLost: () => lost.push("lost"),
  });

  it("fails unavailable, and is lost, when nothing listens", async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const events: string[] = [];
    const connection = openSshConnection(target({ port }), options(events));
    await expect(connection.ready).rejects.toMatchObject({ kind: "unavailable", message: `cannot connect to 127.0.0.1:${port}: ECONNREFUSED` });
    expect(connection.dead).toBe(true);
    expect(events).toEqual(["lost"]);
  });

  it("fails unavailable when the server closes during the handshake", async () => {
    const server = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const events: string[] = [];
      const connection = openSshConnection(target({ port }), options(events));
      await expect(connection.ready).rejects.toMatchObject({ kind: "unavailable" });
      expect(connection.client).toBeUndefined();
      expect(events).toContain("lost");
      expect(events).not.toContain("opened");
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  describe.skipIf(sshdUnavailableReason() !== undefined)("against a real sshd", () => {
    let sshd: TestSshd;
    beforeAll(async () => {
      sshd = await startSshd();
    });
    afterAll(async () => {
      await sshd?.stop();
    });

    it("opens, then ends with its socket closed", async () => {
      const events: string[] = [];
      const connection = openSshConnection(
        { ...target({ port: sshd.port, hostFingerprint: sshd.hostKeyFingerprint }), user: sshd.users.password.user, password: sshd.users.password.password },
        options(events),
      );
      const client = await connection.ready;
      expect(connection.client).toBe(client);
      expect(connection.dead).toBe(false);
      expect(events).toEqual(["opened"]);
      connection.end();
      expect(connection.dead).toBe(true);
      await connection.socketClosed();
      expect(events[0]).toBe("opened");
      expect(events).toContain("lost");
    });

    it("refuses a wrong password as invalid input (legacy 103)", async () => {
      const connection = openSshConnection({ ...target({ port: sshd.port, hostFingerprint: sshd.hostKeyFingerprint }), user: sshd.users.password.user, password: "wrong" }, options([]));
      await expect(connection.ready).rejects.toMatchObject({ kind: "invalid", legacyCode: ErrorCode.BadInput, message: /authentication as .* failed/ });
    });
  });
});
