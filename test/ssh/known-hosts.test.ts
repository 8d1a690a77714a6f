import { execFile } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  hostFieldMatches,
  keyTypeOf,
  knownHostsName,
  knownKeyTypes,
  parseKnownHosts,
  recordHostKey,
  sameFingerprint,
  sshFingerprint,
  verifyHostKey,
} from "../../src/executor/ssh/known-hosts.js";

const run = promisify(execFile);

/** A fake SSH key blob of a type: string type, then random bytes. */
function blob(type: string): Buffer {
  const name = Buffer.from(type);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(name.length);
  return Buffer.concat([length, name, randomBytes(32)]);
}

function hashed(name: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update(name).digest("base64")}`;
}

describe("known_hosts", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "drce-known-hosts-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("names hosts as OpenSSH does", () => {
    expect(knownHostsName("example.org", 22)).toBe("example.org");
    expect(knownHostsName("127.0.0.1", 2222)).toBe("[127.0.0.1]:2222");
  });

  it("reads the key type out of a key blob", () => {
    expect(keyTypeOf(blob("ssh-ed25519"))).toBe("ssh-ed25519");
    expect(keyTypeOf(Buffer.alloc(2))).toBe("");
  });

  it("matches plain, listed, wildcard, negated and hashed host fields", () => {
    expect(hostFieldMatches("example.org", "example.org")).toBe(true);
    expect(hostFieldMatches("Example.ORG", "example.org")).toBe(true);
    expect(hostFieldMatches("a.org,example.org,10.0.0.1", "example.org")).toBe(true);
    expect(hostFieldMatches("*.example.org", "db.example.org")).toBe(true);
    expect(hostFieldMatches("db?.example.org", "db1.example.org")).toBe(true);
    expect(hostFieldMatches("*.example.org,!db.example.org", "db.example.org")).toBe(false);
    expect(hostFieldMatches("[127.0.0.1]:2222", "[127.0.0.1]:2222")).toBe(true);
    expect(hostFieldMatches("127.0.0.1", "[127.0.0.1]:2222")).toBe(false);
    expect(hostFieldMatches("a.b", "axb")).toBe(false);
    expect(hostFieldMatches(hashed("[127.0.0.1]:2222"), "[127.0.0.1]:2222")).toBe(true);
    expect(hostFieldMatches(hashed("[127.0.0.1]:2222"), "[127.0.0.1]:2223")).toBe(false);
    expect(hostFieldMatches("|1|garbage", "x")).toBe(false);
  });

  it("tells known, unknown, changed and revoked keys apart", () => {
    const key = blob("ssh-ed25519");
    const other = blob("ssh-ed25519");
    const rsa = blob("ssh-rsa");
    const name = "[h]:2222";
    const text = [
      "# comment",
      "",
      "not a valid line",
      `@cert-authority * ${other.toString("base64")}`,
      `[h]:2222 ssh-ed25519 ${key.toString("base64")} comment`,
      `other ssh-rsa ${rsa.toString("base64")}`,
      `@revoked ${hashed("[bad]:22")} ssh-ed25519 ${other.toString("base64")}`,
    ].join("\n");
    const entries = parseKnownHosts(text);
    expect(entries).toHaveLength(4);
    expect(verifyHostKey(entries, name, key)).toEqual({ kind: "known" });
    expect(verifyHostKey(entries, name, other)).toEqual({ kind: "changed", knownTypes: ["ssh-ed25519"] });
    // A host known with another key type is changed too: first use must not swap types.
    expect(verifyHostKey(entries, name, rsa)).toEqual({ kind: "changed", knownTypes: ["ssh-ed25519"] });
    expect(verifyHostKey(entries, "[new]:22", key)).toEqual({ kind: "unknown" });
    expect(verifyHostKey(entries, "[bad]:22", other)).toEqual({ kind: "revoked" });
    expect(knownKeyTypes(entries, "other")).toEqual(["ssh-rsa"]);
  });

  it("records a key once, on its own line", async () => {
    const file = join(dir, "sub", "known_hosts");
    const key = blob("ssh-ed25519");
    await recordHostKey(file, "[h]:1", key);
    await recordHostKey(file, "[h]:1", key);
    expect(await readFile(file, "utf8")).toBe(`[h]:1 ssh-ed25519 ${key.toString("base64")}\n`);
    const unterminated = join(dir, "unterminated");
    await writeFile(unterminated, "# no newline");
    await recordHostKey(unterminated, "h", key);
    expect(await readFile(unterminated, "utf8")).toBe(`# no newline\nh ssh-ed25519 ${key.toString("base64")}\n`);
  });

  it("compares fingerprints with or without padding", () => {
    expect(sameFingerprint("SHA256:abc", "SHA256:abc=")).toBe(true);
    expect(sameFingerprint("SHA256:abc", "SHA256:abd")).toBe(false);
  });

  it.skipIf(!existsSync("/usr/bin/ssh-keygen"))("computes the fingerprint ssh-keygen prints", async () => {
    const keyFile = join(dir, "fp-key");
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyFile]);
    const [, base64] = (await readFile(`${keyFile}.pub`, "utf8")).split(/\s+/);
    const { stdout } = await run("ssh-keygen", ["-l", "-E", "sha256", "-f", `${keyFile}.pub`]);
    expect(stdout).toContain(sshFingerprint(Buffer.from(base64 ?? "", "base64")));
  });
});
