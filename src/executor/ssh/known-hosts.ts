import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { appendFile, mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";

/** One usable line of a known_hosts file. */
export interface KnownHostEntry {
  /** "@revoked", "@cert-authority", or empty. */
  readonly marker: string;
  /** The host field as written: comma-separated patterns, or one `|1|salt|hash` entry. */
  readonly hosts: string;
  /** Key type as written, e.g. "ssh-ed25519". */
  readonly keyType: string;
  /** The public key blob (SSH wire format). */
  readonly key: Buffer;
}

/** What a known_hosts file says about a host's key. */
export type HostKeyVerdict =
  | { readonly kind: "known" }
  | { readonly kind: "unknown" }
  | { readonly kind: "changed"; readonly knownTypes: readonly string[] }
  | { readonly kind: "revoked" };

/**
 * Computes the OpenSSH fingerprint of a public key blob: "SHA256:" followed by the
 * base64 of its SHA-256 digest without padding, as `ssh-keygen -l` prints it.
 */
export function sshFingerprint(key: Uint8Array): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

/** Tells whether two "SHA256:..." fingerprints are the same, ignoring base64 padding. */
export function sameFingerprint(a: string, b: string): boolean {
  const norm = (f: string): string => f.trim().replace(/=+$/, "");
  return norm(a) === norm(b);
}

/** Reads the key type name at the start of an SSH public key blob, or "" when the blob is malformed. */
export function keyTypeOf(key: Uint8Array): string {
  if (key.length < 4) return "";
  const length = Buffer.from(key.buffer, key.byteOffset, key.byteLength).readUInt32BE(0);
  if (length > 64 || key.length < 4 + length) return "";
  return Buffer.from(key.subarray(4, 4 + length)).toString("latin1");
}

/**
 * The host name OpenSSH looks up in known_hosts: the bare host for port 22,
 * `[host]:port` otherwise.
 */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Parses the text of a known_hosts file; comments, blank and malformed lines are skipped. */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const fields = line.split(/\s+/);
    let marker = "";
    if (fields[0]?.startsWith("@")) marker = fields.shift() ?? "";
    const [hosts, keyType, base64] = fields;
    if (hosts === undefined || keyType === undefined || base64 === undefined) continue;
    if (!/^[A-Za-z0-9+/]+=*$/.test(base64)) continue;
    entries.push({ marker, hosts, keyType, key: Buffer.from(base64, "base64") });
  }
  return entries;
}

/** Tells whether a known_hosts host field matches a host name (as made by {@link knownHostsName}). */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith("|1|")) return hashedHostMatches(field, name);
  let matched = false;
  for (const pattern of field.split(",")) {
    if (pattern === "") continue;
    const negated = pattern.startsWith("!");
    const body = negated ? pattern.slice(1) : pattern;
    if (globMatches(body.toLowerCase(), name.toLowerCase())) {
      // A matching negated pattern rejects the line outright, as in OpenSSH's match_hostname.
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** Checks a hashed `|1|salt|hash` host field: HMAC-SHA1 of the name keyed with the salt. */
function hashedHostMatches(field: string, name: string): boolean {
  const parts = field.split("|");
  // ["", "1", salt, hash]
  if (parts.length !== 4 || parts[2] === undefined || parts[3] === undefined) return false;
  const salt = Buffer.from(parts[2], "base64");
  const expected = Buffer.from(parts[3], "base64");
  const actual = createHmac("sha1", salt).update(name).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** OpenSSH host patterns: `*` any run of characters, `?` one character. */
function globMatches(pattern: string, text: string): boolean {
  if (!pattern.includes("*") && !pattern.includes("?")) return pattern === text;
  const regex = new RegExp(
    `^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`,
    "s",
  );
  return regex.test(text);
}

/**
 * Decides what known_hosts entries say about a key offered by a host. A host known with a
 * different key is "changed", whatever the key type: trust on first use must not let a
 * server swap its key by offering another type.
 */
export function verifyHostKey(entries: readonly KnownHostEntry[], name: string, key: Uint8Array): HostKeyVerdict {
  const offered = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  let known = false;
  const otherTypes: string[] = [];
  for (const entry of entries) {
    if (entry.marker === "@cert-authority") continue;
    if (!hostFieldMatches(entry.hosts, name)) continue;
    const same = entry.key.equals(offered);
    if (entry.marker === "@revoked") {
      if (same) return { kind: "revoked" };
      continue;
    }
    if (entry.marker !== "") continue;
    if (same) known = true;
    else otherTypes.push(entry.keyType);
  }
  if (known) return { kind: "known" };
  if (otherTypes.length > 0) return { kind: "changed", knownTypes: [...new Set(otherTypes)] };
  return { kind: "unknown" };
}

/** Key types known_hosts holds for a host, in file order; used to prefer them in key exchange. */
export function knownKeyTypes(entries: readonly KnownHostEntry[], name: string): string[] {
  const types: string[] = [];
  for (const entry of entries) {
    if (entry.marker !== "" || !hostFieldMatches(entry.hosts, name)) continue;
    if (!types.includes(entry.keyType)) types.push(entry.keyType);
  }
  return types;
}

/** Reads and parses a known_hosts file; a missing file is empty. */
export async function readKnownHosts(path: string): Promise<KnownHostEntry[]> {
  try {
    return parseKnownHosts(await readFile(path, "utf8"));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
}

/** The known_hosts line recording a key for a host name. */
export function knownHostsLine(name: string, key: Uint8Array): string {
  return `${name} ${keyTypeOf(key)} ${Buffer.from(key).toString("base64")}\n`;
}

/**
 * Appends a host's key to a known_hosts file (created with mode 0600, its directory too),
 * unless the file already knows it. Appends are serialised through `queue` by the caller.
 */
export async function recordHostKey(path: string, name: string, key: Uint8Array): Promise<void> {
  const entries = await readKnownHosts(path);
  if (verifyHostKey(entries, name, key).kind === "known") return;
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  let prefix = "";
  try {
    const text = await readFile(path, "utf8");
    // A file without a trailing newline would glue our line to its last one.
    if (text.length > 0 && !text.endsWith("\n")) prefix = "\n";
  } catch {
    // Missing: appendFile creates it.
  }
  await appendFile(path, prefix + knownHostsLine(name, key), { mode: 0o600 });
}
