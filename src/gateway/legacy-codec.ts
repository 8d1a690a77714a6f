import type { NodeIdentity } from "../core/api.js";
import { ErrorCode } from "../domain/errors.js";
import { TaskState } from "../domain/states.js";
import { isValidTaskId } from "../domain/validate.js";
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
import type { KeptGap, KeptOutput, TaskView } from "../domain/view.js";

/*
 * The legacy DRCE wire format (seed 000, "Request protocol" / "Response protocol"), decoded
 * into domain values and encoded back. Pure: no I/O, no clock, never throws to its caller.
 *
 * Tolerances, each forced by what real legacy callers send:
 * - `data` is base64 with CRLF every 76 characters (PHP chunk_split): whitespace inside it is
 *   ignored; any other character outside the base64 alphabet, or bad padding, is error 12.
 * - numeric fields may arrive as decimal strings (the protocol's Example 8 sends `"type":"0"`,
 *   PHP clients serialise numbers loosely); booleans (`cleanup`) may be 0/1, "0"/"1" or true/false.
 * - `tmode`, `time_max` and `cleanup` sit inside `session` in every example; they are also
 *   accepted at the top level of the set-task data (session wins when both are given).
 * - `environment` is an object, or an array of objects that are merged in order.
 * - terminate accepts the misspelled key `sinal` for `signal`.
 * - `home_directory` is accepted for `home_dir`, `privatekey` for `private_key`, `cpu` for `cpu_max`.
 * - unknown keys are ignored; `null` counts as missing; missing fields default to 0 / "" / [].
 */

/** Legacy request types (`type` of a request message). */
export const LegacyRequestType = {
  SetTask: 0,
  Check: 1,
  Terminate: 2,
  GetData: 3,
  Delete: 4,
  /** Sent by nodes, never received: a request of this type is error 105. */
  StateNotification: 100,
  /** Sent by nodes, never received: a request of this type is error 105. */
  ResourceNotification: 101,
} as const;

/** An id as it travels on the wire: a number when it is a safe integer, else a string. */
export type LegacyWireId = number | string;

/**
 * A decoded request, in domain terms. `id` is the id in its canonical wire form; `sentId`, set
 * only when the request carried the id as a numeric string, is that string, which the reply
 * echoes (the original clients send ids both ways and compare the reply's with their own);
 * `ref` is the id's domain form.
 */
export type LegacyRequest = { readonly sentId?: LegacyWireId } & (
  | { readonly kind: "set"; readonly id: LegacyWireId; readonly spec: TaskSpec }
  | { readonly kind: "check"; readonly id: LegacyWireId; readonly ref: string; readonly extended: boolean }
  | { readonly kind: "terminate"; readonly id: LegacyWireId; readonly ref: string; readonly options: TerminateOptions }
  | { readonly kind: "fetch"; readonly id: LegacyWireId; readonly ref: string; readonly remove: boolean }
  | { readonly kind: "delete"; readonly id: LegacyWireId; readonly ref: string }
);

/**
 * The transport cover the original HCE clients wrap requests in:
 * `{"type": 2, "data": "<request JSON, or that JSON base64-encoded>", "ttl": N}`.
 * The reply goes back in the same cover, its data encoded the way the request's was.
 */
export interface LegacyCover {
  /** The cover's own `type`, echoed in the reply cover (2 in every known client). */
  readonly type: number;
  /** The cover's `ttl`, echoed in the reply cover. */
  readonly ttl: number;
  /** True when the cover's data was base64 (then the reply's data is base64 too). */
  readonly base64: boolean;
}

/** Why a message could not be decoded, with what is known of the request to answer it. */
export interface LegacyDecodeFailure {
  /** The request id if it could be read, else 0. */
  readonly id: LegacyWireId;
  /** The request type if it could be read, else 0. */
  readonly type: number;
  /** Legacy error code: 1 bad JSON, 12 bad base64, 13 bad inner JSON, 14 bad id, 103 bad field, 105 bad type. */
  readonly code: number;
  /** Message naming the problem, safe to show the caller. */
  readonly message: string;
}

/** Outcome of {@link decodeLegacyMessage}. */
export type LegacyDecoded =
  | {
      readonly ok: true;
      readonly request: LegacyRequest;
      readonly cover: LegacyCover | undefined;
      /** The `route` field of the cover, or else of the request, as decoded JSON; see legacy-route.ts. */
      readonly route?: unknown;
    }
  | { readonly ok: false; readonly failure: LegacyDecodeFailure; readonly cover: LegacyCover | undefined };

/** One item of a legacy response array, with every field of the protocol. */
export interface LegacyResultItem {
  error_code: number;
  error_message: string;
  exit_status: number;
  /** `[]` when there are no fields (as the protocol's examples show), else name -> value. */
  fields: Record<string, string> | [];
  files: LegacyFileItem[];
  host: string;
  id: LegacyWireId;
  node: string;
  pid: number;
  port: number;
  state: number;
  /** base64 of the stderr bytes. */
  stderr: string;
  /** Same value as `stderr`: the key the original clients read. */
  stderror: string;
  /** base64 of the stdout bytes. */
  stdout: string;
  subtasks: LegacyResultItem[];
  time: number;
  type: number;
  /**
   * Pids of the task's processes that outlived it (they left its process group and the
   * node has no cgroup to reach them). A drce addition, present only when not empty.
   */
  escaped_pids?: number[];
  /**
   * True when the command wrote more stdout than the node keeps: `stdout` holds the head and
   * the tail, and `stdout_gap_offset`/`stdout_gap_bytes` say where and how much is missing.
   * A drce addition, present only when truncated, with `stdout_size` (the true size).
   */
  stdout_truncated?: boolean;
  /** Bytes the command wrote to stdout in all (with `stdout_truncated`). */
  stdout_size?: number;
  /** Offset in the stream (and in the decoded `stdout`) where the bytes not kept begin. */
  stdout_gap_offset?: number;
  /** Bytes of stdout not kept. */
  stdout_gap_bytes?: number;
  /** As `stdout_truncated`, for stderr. */
  stderr_truncated?: boolean;
  /** As `stdout_size`, for stderr. */
  stderr_size?: number;
  /** As `stdout_gap_offset`, for stderr. */
  stderr_gap_offset?: number;
  /** As `stdout_gap_bytes`, for stderr. */
  stderr_gap_bytes?: number;
}

/** A file of a request or a result: data is base64 when bit 31 of action is set, else UTF-8 text. */
export interface LegacyFileItem {
  name: string;
  data: string;
  action: number;
}

/** Deepest subtask nesting the codec walks; the core applies its own, smaller policy limit. */
const maxNesting = 64;

/** An expected decoding problem; caught inside this module only. */
class CodecError extends Error {
  override name = "CodecError";
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const utf8 = new TextEncoder();

/**
 * Decodes base64 strictly: spaces, tabs, CR and LF are ignored (the original clients break lines
 * every 76 characters); any other character outside the standard alphabet, `=` anywhere but at
 * the end, or a length that no padding explains, gives undefined. Missing padding is accepted.
 */
export function decodeBase64Strict(text: string): Uint8Array | undefined {
  const compact = text.replace(/[\r\n\t ]/g, "");
  const match = /^([A-Za-z0-9+/]*)(={0,2})$/.exec(compact);
  if (match === null) return undefined;
  const body = match[1] ?? "";
  const padding = match[2] ?? "";
  if (padding.length > 0 ? compact.length % 4 !== 0 : body.length % 4 === 1) return undefined;
  return new Uint8Array(Buffer.from(body, "base64"));
}

/** Encodes bytes as base64 without line breaks (every legacy client's decoder accepts it). */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/** Converts a domain id to its wire form: a number when it is a canonical safe integer, else the string. */
export function toWireId(id: string): LegacyWireId {
  if (/^(0|[1-9][0-9]*)$/.test(id)) {
    const n = Number(id);
    if (Number.isSafeInteger(n)) return n;
  }
  return id;
}

/**
 * Decodes one message body: a DRCE request `{"type","data","id","subtasks"}`, or a request in
 * the original clients' cover. Never throws; a body that is not a usable request gives a failure
 * with the legacy error code to answer with.
 *
 * Cover rule: a body is a cover when it has a `ttl` key and no `id` key (covers carry no id;
 * a request that adds an outer `ttl` stays a request), or when its `data` (raw JSON text, or
 * base64 of JSON) is an object holding `type` and `id` or `data`, i.e. a request of its own.
 * No request type's `data` has that shape (set-task data has no `type`; check and get-data data
 * have `type` but neither `id` nor `data`; terminate and delete data have neither), so the rule
 * cannot mistake a request for a cover. Covers are unwrapped once, never recursively.
 */
export function decodeLegacyMessage(body: string | Uint8Array): LegacyDecoded {
  let cover: LegacyCover | undefined;
  let id: LegacyWireId = 0;
  let type = 0;
  try {
    const outer = parseOuter(body);
    let message = outer;
    const unwrapped = unwrapCover(outer);
    if (unwrapped !== undefined) {
      cover = unwrapped.cover;
      message = unwrapped.inner;
    }
    id = echoableId(message["id"]);
    type = echoableType(message["type"]);
    const decodedRequest = decodeRequest(message, 0);
    // Only a numeric string differs from its canonical wire form (the number).
    const sent = message["id"];
    const request: LegacyRequest = typeof sent === "string" && decodedRequest.id !== sent ? { ...decodedRequest, sentId: sent } : decodedRequest;
    // The route rides in the cover, or in the request itself when it comes without one.
    const route = outer["route"] ?? message["route"];
    return route === undefined || route === null ? { ok: true, request, cover } : { ok: true, request, cover, route };
  } catch (error) {
    if (error instanceof CoverFailure) cover = error.cover;
    if (error instanceof CodecError) return { ok: false, failure: { id, type, code: error.code, message: error.message }, cover };
    // Only a pathological body gets here (e.g. nesting deep enough to exhaust the stack).
    return { ok: false, failure: { id, type, code: ErrorCode.Parse, message: "the request could not be parsed" }, cover };
  }
}

function parseOuter(body: string | Uint8Array): JsonObject {
  let text: string;
  if (typeof body === "string") {
    text = body;
  } else {
    try {
      text = strictUtf8.decode(body);
    } catch {
      throw new CodecError(ErrorCode.Parse, "the message is not valid UTF-8");
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CodecError(ErrorCode.Parse, "the message is not valid JSON");
  }
  if (!isObject(value)) throw new CodecError(ErrorCode.Parse, "the message is not a JSON object");
  return value;
}

function unwrapCover(outer: JsonObject): { cover: LegacyCover; inner: JsonObject } | undefined {
  const hasTtl = "ttl" in outer && !("id" in outer);
  const data = outer["data"];
  let inner: Json | undefined;
  let base64 = false;
  let problem: CodecError | undefined;
  if (typeof data === "string") {
    if (data.trimStart().startsWith("{")) {
      try {
        inner = JSON.parse(data) as Json;
      } catch {
        problem = new CodecError(ErrorCode.Parse, "the cover's data is not valid JSON");
      }
    } else {
      base64 = true;
      const bytes = decodeBase64Strict(data);
      if (bytes === undefined) {
        problem = new CodecError(ErrorCode.Unserialization, "the cover's data is not valid base64");
      } else {
        try {
          inner = JSON.parse(strictUtf8.decode(bytes)) as Json;
        } catch {
          problem = new CodecError(ErrorCode.UnserializationBadJson, "the cover's data is not a UTF-8 JSON object");
        }
      }
    }
  }
  const looksLikeRequest = isObject(inner) && "type" in inner && ("id" in inner || "data" in inner);
  if (!hasTtl && !looksLikeRequest) return undefined;
  const cover: LegacyCover = { type: echoableType(outer["type"]), ttl: echoableNumber(outer["ttl"]), base64 };
  if (!looksLikeRequest) {
    // A cover by its ttl key whose data does not hold a request: answer in a cover all the same.
    const failure =
      problem ??
      (data === undefined || data === null
        ? new CodecError(ErrorCode.UnserializationBadJson, "the cover has no data")
        : typeof data !== "string"
          ? new CodecError(ErrorCode.BadInput, "the cover's data must be a string")
          : new CodecError(ErrorCode.UnserializationBadJson, "the cover's data is not a request object"));
    throw new CoverFailure(cover, failure);
  }
  return { cover, inner: inner as JsonObject };
}

/** Carries the cover out of {@link unwrapCover} when its content is unusable. */
class CoverFailure extends CodecError {
  override name = "CoverFailure";
  constructor(
    readonly cover: LegacyCover,
    failure: CodecError,
  ) {
    super(failure.code, failure.message);
  }
}

function decodeRequest(message: JsonObject, depth: number): LegacyRequest {
  if (depth > maxNesting) throw new CodecError(ErrorCode.BadInput, `subtasks nested deeper than ${maxNesting}`);
  const { wire, ref } = readId(message["id"]);
  const type = readRequestType(message["type"]);
  const data = readData(message["data"]);
  switch (type) {
    case LegacyRequestType.SetTask: {
      const subtasks = readSubtasks(message["subtasks"], depth);
      return { kind: "set", id: wire, spec: decodeSetData(data, ref, subtasks) };
    }
    case LegacyRequestType.Check: {
      const checkType = readInt(data, "type", "data.type", 0, 2) ?? 0;
      return { kind: "check", id: wire, ref: requireRef(ref), extended: checkType === 2 };
    }
    case LegacyRequestType.Terminate:
      return { kind: "terminate", id: wire, ref: requireRef(ref), options: decodeTerminateData(data) };
    case LegacyRequestType.GetData: {
      const fetchType = readInt(data, "type", "data.type", 0, 2) ?? 0;
      return { kind: "fetch", id: wire, ref: requireRef(ref), remove: fetchType === 1 };
    }
    case LegacyRequestType.Delete:
      return { kind: "delete", id: wire, ref: requireRef(ref) };
    default:
      throw new CodecError(ErrorCode.BadRequestType, `request type ${type} is not supported`);
  }
}

function readId(value: Json | undefined): { wire: LegacyWireId; ref: string } {
  if (value === undefined || value === null) return { wire: 0, ref: "" };
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) throw new CodecError(ErrorCode.TaskIdRange, "id must be a non-negative integer");
    return { wire: value, ref: String(value) };
  }
  if (typeof value === "string") {
    if (!isValidTaskId(value)) throw new CodecError(ErrorCode.TaskIdRange, "id must be 1 to 128 letters, digits, '.', '_' or '-'");
    return { wire: toWireId(value), ref: value };
  }
  throw new CodecError(ErrorCode.BadInput, "id must be a number or a string");
}

function requireRef(ref: string): string {
  if (ref === "") throw new CodecError(ErrorCode.BadInput, "id is required");
  return ref;
}

function readRequestType(value: Json | undefined): number {
  if (value === undefined || value === null) return LegacyRequestType.SetTask;
  const n = typeof value === "number" ? value : typeof value === "string" && /^\s*[0-9]+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) throw new CodecError(ErrorCode.BadRequestType, "type must be a request type number");
  return n;
}

function readData(value: Json | undefined): JsonObject {
  // PHP's json_encode(array()) is "[]": the PHP client's delete request carries "W10=".
  // A missing data field defaults to "", which holds no JSON object: error 13 like any empty data.
  const text = value === undefined || value === null ? "" : value;
  if (typeof text !== "string") throw new CodecError(ErrorCode.BadInput, "data must be a base64 string");
  const bytes = decodeBase64Strict(text);
  if (bytes === undefined) throw new CodecError(ErrorCode.Unserialization, "data is not valid base64");
  let parsed: unknown;
  try {
    parsed = JSON.parse(strictUtf8.decode(bytes));
  } catch {
    throw new CodecError(ErrorCode.UnserializationBadJson, "data does not hold UTF-8 JSON");
  }
  if (Array.isArray(parsed) && parsed.length === 0) return {};
  if (!isObject(parsed)) throw new CodecError(ErrorCode.UnserializationBadJson, "data does not hold a JSON object");
  return parsed;
}

function readSubtasks(value: Json | undefined, depth: number): TaskSpec[] {
  if (value === undefined || value === null) return [];
  // The protocol's Examples 10-12 show a lone subtask as an object instead of an array.
  const list = Array.isArray(value) ? value : isObject(value) ? [value] : undefined;
  if (list === undefined) throw new CodecError(ErrorCode.BadInput, "subtasks must be an array");
  return list.map((item, index) => {
    if (!isObject(item)) throw new CodecError(ErrorCode.BadInput, `subtasks[${index}] must be an object`);
    try {
      const request = decodeRequest(item, depth + 1);
      if (request.kind !== "set") throw new CodecError(ErrorCode.BadRequestType, "must be a set-task request (type 0)");
      return request.spec;
    } catch (error) {
      if (error instanceof CodecError) throw new CodecError(error.code, `subtask ${describeId(item["id"])}: ${error.message}`);
      throw error;
    }
  });
}

function describeId(value: Json | undefined): string {
  return typeof value === "number" || (typeof value === "string" && value.length <= 128) ? JSON.stringify(value) : "(no id)";
}

/** Decodes the set-task data (request type 0) into a TaskSpec. */
function decodeSetData(data: JsonObject, id: string, subtasks: TaskSpec[]): TaskSpec {
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
function decodeTerminateData(data: JsonObject): TerminateOptions {
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

// ---- field readers: undefined for missing or null, CodecError 103 for a wrong type ----

function readAny(from: JsonObject, key: string): Json | undefined {
  const value = Object.prototype.hasOwnProperty.call(from, key) ? from[key] : undefined;
  return value === null ? undefined : value;
}

function readObject(from: JsonObject, key: string, path: string): JsonObject | undefined {
  const value = readAny(from, key);
  if (value === undefined) return undefined;
  // PHP's json_encode writes an empty associative array as [].
  if (Array.isArray(value) && value.length === 0) return {};
  if (!isObject(value)) throw new CodecError(ErrorCode.BadInput, `${path} must be an object`);
  return value;
}

function readString(from: JsonObject, key: string, path: string): string | undefined {
  const value = readAny(from, key);
  if (value === undefined) return undefined;
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  throw new CodecError(ErrorCode.BadInput, `${path} must be a string`);
}

function readStringArray(from: JsonObject, key: string, path: string): string[] {
  const value = readAny(from, key);
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new CodecError(ErrorCode.BadInput, `${path} must be an array of strings`);
  }
  return value as string[];
}

function readNumber(from: JsonObject, key: string, path: string): number | undefined {
  const value = readAny(from, key);
  if (value === undefined) return undefined;
  let n: number;
  if (typeof value === "number") n = value;
  else if (typeof value === "string" && /^\s*-?[0-9]+(\.[0-9]+)?\s*$/.test(value)) n = Number(value);
  else throw new CodecError(ErrorCode.BadInput, `${path} must be a number`);
  if (!Number.isFinite(n) || n < 0) throw new CodecError(ErrorCode.BadInput, `${path} must be a non-negative number`);
  return n;
}

function readInt(from: JsonObject, key: string, path: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const value = readAny(from, key);
  if (value === undefined) return undefined;
  let n: number;
  if (typeof value === "number") n = value;
  else if (typeof value === "string" && /^\s*-?[0-9]+\s*$/.test(value)) n = Number(value);
  else throw new CodecError(ErrorCode.BadInput, `${path} must be a number`);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range = min === 0 && max === Number.MAX_SAFE_INTEGER ? "a non-negative integer" : `an integer from ${min} to ${max}`;
    throw new CodecError(ErrorCode.BadInput, `${path} must be ${range}`);
  }
  return n;
}

function readBool(from: JsonObject, key: string, path: string): boolean | undefined {
  const value = readAny(from, key);
  if (value === undefined) return undefined;
  if (typeof value === "boolean") return value;
  if (value === 0 || value === "0" || value === "") return false;
  if (value === 1 || value === "1") return true;
  throw new CodecError(ErrorCode.BadInput, `${path} must be 0 or 1`);
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The id to put in an error item: the request's own when it is a plain value, else 0. */
function echoableId(value: Json | undefined): LegacyWireId {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && value.length <= 128) return toWireId(value);
  return 0;
}

function echoableType(value: Json | undefined): number {
  if (typeof value === "number" && Number.isSafeInteger(value)) return value;
  if (typeof value === "string" && /^[0-9]{1,9}$/.test(value)) return Number(value);
  return 0;
}

function echoableNumber(value: Json | undefined): number {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && /^[0-9]{1,15}$/.test(value)) return Number(value);
  return 0;
}

// ---- encoding ----

/** Fields the original reports as integers ("%d"); every other field is printed as "%f". */
const integerFields: ReadonlySet<string> = new Set(["TASK_VRAM", "TASK_RRAM", "TASK_THREADS"]);

/**
 * Formats a `fields` value as the original node did: strings, integers for the TASK_* byte and
 * thread counts ("2121728"), six decimals for the rest ("55.120000").
 */
export function formatFieldValue(name: string, value: number): string {
  const n = Number.isFinite(value) ? value : 0;
  return integerFields.has(name) ? String(Math.round(n)) : n.toFixed(6);
}

/** Encodes a file for the wire: base64 when bit 31 of its action is set, else UTF-8 text. */
export function encodeFileItem(file: { readonly name: string; readonly data: Uint8Array; readonly action: number }): LegacyFileItem {
  const action = file.action >>> 0;
  const data = (action & FileAction.Base64) !== 0 ? encodeBase64(file.data) : Buffer.from(file.data).toString("utf8");
  return { name: file.name, data, action };
}

/**
 * Encodes a task view (and its subtasks, recursively) as a legacy result item.
 * `requestType` is the type of the request being answered; `id` overrides the view's id for
 * the top item, so the caller gets back the id exactly as it referred to the task.
 */
export function encodeTaskView(view: TaskView, identity: NodeIdentity, requestType: number, id?: LegacyWireId, placeholder?: (kept: KeptOutput) => string): LegacyResultItem {
  const status = view.status;
  const output = (kept: KeptOutput | undefined, inline: Uint8Array | undefined): string =>
    kept !== undefined && placeholder !== undefined ? placeholder(kept) : inline === undefined ? "" : encodeBase64(inline);
  const stdout = output(view.stdoutFile, view.stdout);
  const stderr = output(view.stderrFile, view.stderr);
  const fieldEntries = Object.entries(view.fields ?? {});
  return {
    error_code: status.errorCode,
    error_message: status.errorMessage,
    exit_status: status.exitStatus,
    fields: fieldEntries.length === 0 ? [] : Object.fromEntries(fieldEntries.map(([k, v]) => [k, formatFieldValue(k, v)])),
    files: (view.files ?? []).map(encodeFileItem),
    host: identity.host,
    id: id ?? toWireId(status.id),
    node: identity.node,
    pid: status.pid,
    port: identity.port,
    state: status.state,
    stderr,
    stderror: stderr,
    stdout,
    subtasks: view.subtasks.map((sub) => encodeTaskView(sub, identity, requestType, undefined, placeholder)),
    time: Math.max(0, Math.round(view.timeMs)),
    type: requestType,
    ...(status.escapedPids.length > 0 ? { escaped_pids: [...status.escapedPids] } : {}),
    ...truncation("stdout", status.stdoutTruncated, status.stdoutSize, view.stdoutGap),
    ...truncation("stderr", status.stderrTruncated, status.stderrSize, view.stderrGap),
  };
}

/** The truncation fields of a stream whose kept copy was cut: its true size and, on a view with output, the gap. */
function truncation(stream: "stdout" | "stderr", truncated: boolean, size: number, gap: KeptGap | undefined): Partial<LegacyResultItem> {
  if (!truncated) return {};
  const fields: Record<string, number | boolean> = { [`${stream}_truncated`]: true, [`${stream}_size`]: size };
  if (gap !== undefined) {
    fields[`${stream}_gap_offset`] = gap.offset;
    fields[`${stream}_gap_bytes`] = gap.bytes;
  }
  return fields as Partial<LegacyResultItem>;
}

/** What an error item says. */
export interface LegacyErrorItemInit {
  readonly id: LegacyWireId;
  readonly type: number;
  readonly errorCode: number;
  readonly message: string;
  /** 6 (not set) for refused requests, 3 for an unknown task. */
  readonly state: number;
}

/** Builds a result item that carries only an error (every other field at its default). */
export function encodeErrorItem(identity: NodeIdentity, init: LegacyErrorItemInit): LegacyResultItem {
  return {
    error_code: init.errorCode,
    error_message: init.message,
    exit_status: 0,
    fields: [],
    files: [],
    host: identity.host,
    id: init.id,
    node: identity.node,
    pid: 0,
    port: identity.port,
    state: init.state,
    stderr: "",
    stderror: "",
    stdout: "",
    subtasks: [],
    time: 0,
    type: init.type,
  };
}

/** Builds the error item answering a message that could not be decoded (state 6, not set). */
export function encodeDecodeFailure(identity: NodeIdentity, failure: LegacyDecodeFailure): LegacyResultItem {
  return encodeErrorItem(identity, { id: failure.id, type: failure.type, errorCode: failure.code, message: failure.message, state: TaskState.NotSet });
}

/**
 * Serialises a response: the JSON array of items, wrapped in the request's cover when it came
 * in one (`{"type", "data", "ttl"}`, data being the response JSON, base64 when the request's was).
 */
export function encodeLegacyResponse(items: readonly LegacyResultItem[], cover?: LegacyCover): string {
  const json = JSON.stringify(items);
  if (cover === undefined) return json;
  const data = cover.base64 ? Buffer.from(json, "utf8").toString("base64") : json;
  return JSON.stringify({ type: cover.type, data, ttl: cover.ttl });
}
