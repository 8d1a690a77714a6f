import { ErrorCode } from "../domain/errors.js";
import { localSession } from "../domain/spec-json.js";
import {
  defaultTerminate,
  FileAction,
  noLimits,
  taskSpec,
  type FileSpec,
  type Limits,
  type Session,
  type TaskSpec,
  type TerminateOptions,
} from "../domain/task.js";
import { decodeBase64Strict } from "./legacy-base64.js";
import { CodecError, isObject, readAny, readBool, readInt, readNumber, readObject, readString, readStringArray, type Json, type JsonObject } from "./legacy-json-fields.js";

/*
 * The data of the legacy requests that carry fields of their own: set-task (type 0), read
 * into a TaskSpec, and terminate (type 2), read into TerminateOptions. The field tables of
 * the protocol, with the aliases real callers send (see legacy-codec.ts).
 */

const utf8 = new TextEncoder();

/** Decodes the set-task data (request type 0) into a TaskSpec. */
export function decodeSetData(data: JsonObject, id: string, subtasks: TaskSpec[]): TaskSpec {
  const session = readObject(data, "session", "session") ?? {};
  // tmode, time_max and cleanup live in session in every example; the top level is a fallback.
  const inSessionOrTop = <T>(read: (from: JsonObject, path: string) => T | undefined): T | undefined =>
    read(session, "session") ?? read(data, "data");
  const tmode = inSessionOrTop((o, p) => readInt(o, "tmode", `${p}.tmode`, 0, 2)) ?? 0;
  const timeMaxMs = inSessionOrTop((o, p) => readInt(o, "time_max", `${p}.time_max`)) ?? 0;
  const cleanup = inSessionOrTop((o, p) => readBool(o, "cleanup", `${p}.cleanup`)) ?? false;
  const input = readString(data, "input", "input") ?? "";
  return taskSpec({
    id,
    alias: readString(data, "alias", "alias") ?? "",
    command: readString(data, "command", "command") ?? "",
    argv: readStringArray(data, "argv", "argv"),
    input: utf8.encode(input),
    env: readEnvironment(session["environment"]),
    workDir: readString(session, "home_dir", "session.home_dir") ?? readString(session, "home_directory", "session.home_directory") ?? "",
    shell: readString(session, "shell", "session.shell") ?? "",
    session: readSession(session),
    mode: tmode === 2 ? 2 : 1,
    timeoutSeconds: readInt(session, "timeout", "session.timeout") ?? 0,
    timeMaxMs,
    cleanup,
    files: readFiles(data["files"]),
    limits: readLimits(data),
    subtasks,
    ttlMs: readInt(data, "ttl", "ttl") ?? 0,
  });
}

/** Reads a set-task session: local (type 0, with the uid and gid drce adds) or SSH (type 1). */
function readSession(session: JsonObject): Session {
  const type = readInt(session, "type", "session.type", 0, 1) ?? 0;
  const port = readInt(session, "port", "session.port", 0, 65535) ?? 0;
  const user = readString(session, "user", "session.user") ?? "";
  const password = readString(session, "password", "session.password") ?? "";
  const privateKey = readString(session, "private_key", "session.private_key") ?? readString(session, "privatekey", "session.privatekey") ?? "";
  const passphrase = readString(session, "passphrase", "session.passphrase") ?? "";
  const host = readString(session, "host", "session.host") ?? "";
  const hostFingerprint = readString(session, "fingerprint", "session.fingerprint") ?? "";
  // Read for their type only: the public key is derived from the private key, and the auth type
  // follows from which secret is given.
  readString(session, "publickey", "session.publickey");
  readAny(session, "authtype");
  // Run-as-user for local sessions (a drce addition): numeric uid and gid.
  const uid = readInt(session, "uid", "session.uid", 0, 0xfffffffe);
  const gid = readInt(session, "gid", "session.gid", 0, 0xfffffffe);
  if (type === 0) return localSession(uid, gid);
  if (uid !== undefined || gid !== undefined) throw new CodecError(ErrorCode.BadInput, "session.uid and session.gid apply to local sessions (type 0) only");
  return { type: "ssh", host, port, user, password, privateKey, passphrase, hostFingerprint };
}

/** Reads `environment`: an object, or an array of objects merged in order; values become strings. */
function readEnvironment(value: Json | undefined): Record<string, string> {
  const env: Record<string, string> = Object.create(null) as Record<string, string>;
  if (value === undefined || value === null || value === "") return { ...env };
  const parts = Array.isArray(value) ? value : [value];
  parts.forEach((part, index) => {
    const path = Array.isArray(value) ? `session.environment[${index}]` : "session.environment";
    if (!isObject(part)) throw new CodecError(ErrorCode.BadInput, `${path} must be an object of name-value pairs`);
    for (const [name, v] of Object.entries(part)) {
      if (typeof v === "string") env[name] = v;
      else if (typeof v === "number" || typeof v === "boolean") env[name] = String(v);
      else if (v === null) env[name] = "";
      else throw new CodecError(ErrorCode.BadInput, `${path}.${name} must be a string`);
    }
  });
  return { ...env };
}

/** Reads `files`: each a name, an action and data that is base64 when bit 31 of the action is set. */
function readFiles(value: Json | undefined): FileSpec[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new CodecError(ErrorCode.BadInput, "files must be an array");
  return value.map((item, index): FileSpec => {
    const path = `files[${index}]`;
    // An empty PHP array is an empty object here too.
    if (Array.isArray(item) && item.length === 0) item = {};
    if (!isObject(item)) throw new CodecError(ErrorCode.BadInput, `${path} must be an object`);
    const name = readString(item, "name", `${path}.name`) ?? "";
    // JSON carries bit 31 as 2147483661 (unsigned) or, from 32-bit clients, as a negative number.
    const raw = readInt(item, "action", `${path}.action`, -0x80000000, 0xffffffff) ?? 0;
    const action = raw >>> 0;
    const text = readString(item, "data", `${path}.data`) ?? "";
    let data: Uint8Array;
    if ((action & FileAction.Base64) !== 0) {
      const bytes = decodeBase64Strict(text);
      if (bytes === undefined) throw new CodecError(ErrorCode.Unserialization, `${path}.data is not valid base64 (action bit 31 is set)`);
      data = bytes;
    } else {
      data = utf8.encode(text);
    }
    return { name, data, action };
  });
}

/** The `limits` keys of the protocol's table, by the domain field each sets. */
const limitKeys: readonly (readonly [keyof Limits, string])[] = [
  ["procMax", "proc_max"],
  ["threadsMax", "threads_max"],
  ["cpuMax", "cpu_max"],
  ["iowaitMax", "iowait_max"],
  ["vramFree", "vram_free"],
  ["vramFreeMin", "vram_free_min"],
  ["rramFree", "rram_free"],
  ["rramFreeMin", "rram_free_min"],
  ["diskFree", "disk_free"],
  ["diskFreeMin", "disk_free_min"],
  ["iowaitUsageMax", "iowait_usage_max"],
  ["vramUsageMax", "vram_usage_max"],
  ["rramUsageMax", "rram_usage_max"],
  ["diskUsageMax", "disk_usage_max"],
  ["diskUsageMaxBytes", "disk_usage_max_bytes"],
];

/** Reads `limits`, the protocol's keys and the `cpu` its examples send. */
function readLimits(data: JsonObject): Limits {
  const limits = readObject(data, "limits", "limits");
  if (limits === undefined) return noLimits;
  const out: Record<keyof Limits, number> = { ...noLimits };
  for (const [field, key] of limitKeys) {
    const value = readNumber(limits, key, `limits.${key}`);
    if (value !== undefined) out[field] = value;
  }
  // Examples 7 and 10 send `cpu`; the protocol's table says `cpu_max`. cpu_max wins when both are set.
  if (limits["cpu_max"] === undefined || limits["cpu_max"] === null) {
    const cpu = readNumber(limits, "cpu", "limits.cpu");
    if (cpu !== undefined) out.cpuMax = cpu;
  }
  return out;
}

/** Decodes terminate data; zero or missing alg, delay, repeat and signal take the defaults. */
export function decodeTerminateData(data: JsonObject): TerminateOptions {
  const alg = readInt(data, "alg", "data.alg", 0, 2) ?? 0;
  const delay = readInt(data, "delay", "data.delay") ?? 0;
  const repeat = readInt(data, "repeat", "data.repeat") ?? 0;
  const signal = readInt(data, "signal", "data.signal", 0, 64) ?? readInt(data, "sinal", "data.sinal", 0, 64) ?? 0;
  return {
    alg: alg === 2 ? 2 : 1,
    delayMs: delay === 0 ? defaultTerminate.delayMs : delay,
    repeat: repeat === 0 ? defaultTerminate.repeat : repeat,
    signal: signal === 0 ? defaultTerminate.signal : signal,
    cleanup: readBool(data, "cleanup", "data.cleanup") ?? false,
  };
}
