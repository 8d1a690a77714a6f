import { createHash } from "node:crypto";
import { noLimits, type FileSpec, type Limits, type Session, type TaskSpec } from "./task.js";

/** The JSON form of a TaskSpec as stored in `request.json`; bytes are base64, secrets removed. */
export interface StoredSpec {
  readonly id: string;
  readonly alias: string;
  readonly command: string;
  readonly argv: readonly string[];
  readonly input: string;
  readonly env: Readonly<Record<string, string>>;
  readonly workDir: string;
  readonly shell: string;
  readonly session: StoredSession;
  readonly mode: number;
  readonly timeoutSeconds: number;
  readonly timeMaxMs: number;
  readonly cleanup: boolean;
  readonly files: readonly { readonly name: string; readonly data: string; readonly action: number }[];
  readonly limits: Limits;
  readonly subtasks: readonly StoredSpec[];
  readonly ttlMs: number;
  readonly openStdin: boolean;
}

/** A session with its secrets replaced by markers saying whether one was given. */
export type StoredSession =
  | { readonly type: "local"; readonly uid?: number; readonly gid?: number }
  | {
      readonly type: "ssh";
      readonly host: string;
      readonly port: number;
      readonly user: string;
      readonly password: "" | "[redacted]";
      readonly privateKey: "" | "[redacted]";
      readonly passphrase: "" | "[redacted]";
      readonly hostFingerprint: string;
    };

const redacted = "[redacted]" as const;

/** Converts a spec to its stored JSON form. Passwords, keys and passphrases never appear in it. */
export function toStoredSpec(spec: TaskSpec): StoredSpec {
  return {
    id: spec.id,
    alias: spec.alias,
    command: spec.command,
    argv: [...spec.argv],
    input: Buffer.from(spec.input).toString("base64"),
    env: { ...spec.env },
    workDir: spec.workDir,
    shell: spec.shell,
    session: redactSession(spec.session),
    mode: spec.mode,
    timeoutSeconds: spec.timeoutSeconds,
    timeMaxMs: spec.timeMaxMs,
    cleanup: spec.cleanup,
    files: spec.files.map((f) => ({ name: f.name, data: Buffer.from(f.data).toString("base64"), action: f.action >>> 0 })),
    limits: { ...spec.limits },
    subtasks: spec.subtasks.map(toStoredSpec),
    ttlMs: spec.ttlMs,
    openStdin: spec.openStdin,
  };
}

/** A local session, with uid and gid present only when given. */
export function localSession(uid: number | undefined, gid: number | undefined): Extract<Session, { type: "local" }> {
  return { type: "local", ...(uid === undefined ? {} : { uid }), ...(gid === undefined ? {} : { gid }) };
}

/** Replaces a session's secrets with markers. */
export function redactSession(session: Session): StoredSession {
  // uid and gid appear only when asked for, so digests of earlier requests do not change.
  if (session.type === "local") return localSession(session.uid, session.gid);
  return {
    type: "ssh",
    host: session.host,
    port: session.port,
    user: session.user,
    password: session.password === "" ? "" : redacted,
    privateKey: session.privateKey === "" ? "" : redacted,
    passphrase: session.passphrase === "" ? "" : redacted,
    hostFingerprint: session.hostFingerprint,
  };
}

/** Rebuilds a spec from its stored form (secrets stay empty). */
export function fromStoredSpec(stored: StoredSpec): TaskSpec {
  const session: Session =
    stored.session.type === "ssh"
      ? { ...stored.session, password: "", privateKey: "", passphrase: "" }
      : localSession(stored.session.uid, stored.session.gid);
  return {
    id: stored.id,
    alias: stored.alias,
    command: stored.command,
    argv: [...stored.argv],
    input: Buffer.from(stored.input, "base64"),
    env: { ...stored.env },
    workDir: stored.workDir,
    shell: stored.shell,
    session,
    mode: stored.mode === 2 ? 2 : 1,
    timeoutSeconds: stored.timeoutSeconds,
    timeMaxMs: stored.timeMaxMs,
    cleanup: stored.cleanup,
    files: stored.files.map((f): FileSpec => ({ name: f.name, data: Buffer.from(f.data, "base64"), action: f.action })),
    limits: { ...noLimits, ...stored.limits },
    subtasks: stored.subtasks.map(fromStoredSpec),
    ttlMs: stored.ttlMs,
    openStdin: stored.openStdin,
  };
}

/**
 * A digest identifying a request, for idempotent submission: two submissions with the
 * same id are the same task when their digests match. Computed over the stored form
 * (so secrets do not enter it) with keys in a fixed order.
 */
export function specDigest(spec: TaskSpec): string {
  return storedSpecDigest(toStoredSpec(spec));
}

/**
 * The digest of {@link specDigest} from a request already in its stored form, for a caller
 * that stores that form too and so converts the request once.
 */
export function storedSpecDigest(stored: StoredSpec): string {
  return createHash("sha256").update(canonicalJson(stored)).digest("hex");
}

// Digests are kept on disk and compared with those of later submissions, so this text must
// stay byte for byte what it was: keys in UTF-16 code unit order (the default sort's), each
// value as JSON.stringify writes it. Built by appending, without the entry arrays and the
// joins of a map over Object.entries, because every submission pays for it.
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) {
    let text = "[";
    for (let i = 0; i < value.length; i++) text += (i === 0 ? "" : ",") + canonicalJson(value[i]);
    return text + "]";
  }
  if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).sort();
    let text = "{";
    for (let i = 0; i < keys.length; i++) text += (i === 0 ? "" : ",") + JSON.stringify(keys[i]) + ":" + canonicalJson(record[keys[i]!]);
    return text + "}";
  }
  return JSON.stringify(value);
}
