import { ErrorCode } from "../domain/errors.js";
import { isValidTaskId } from "../domain/validate.js";
import type { TaskSpec, TerminateOptions } from "../domain/task.js";
import { decodeBase64Strict } from "./legacy-base64.js";
import { CoverFailure, unwrapCover } from "./legacy-cover.js";
import { CodecError, echoableId, echoableType, isObject, readInt, strictUtf8, type Json, type JsonObject } from "./legacy-json-fields.js";
import { decodeSetData, decodeTerminateData } from "./legacy-task-data.js";
import { LegacyRequestType, toWireId, type LegacyCover, type LegacyWireId } from "./legacy-wire.js";

/*
 * Decoding of one legacy request message into domain terms. Pure: no I/O, no clock, never
 * throws to its caller (the tolerances it keeps are listed in legacy-codec.ts).
 */

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

/** Deepest subtask nesting the codec walks; the core applies its own, smaller policy limit. */
const maxNesting = 64;

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

/** Parses the body as a JSON object (UTF-8 when it is bytes); anything else is error 1. */
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


/** Decodes one request (and its subtasks, to {@link maxNesting} levels) of a decoded message. */
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

/** Reads a request id: its wire form and its domain form ("" when missing); a bad id is error 14. */
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

/** The id a request on an existing task must carry. */
function requireRef(ref: string): string {
  if (ref === "") throw new CodecError(ErrorCode.BadInput, "id is required");
  return ref;
}

/** Reads a request type; a missing type is set-task (0). */
function readRequestType(value: Json | undefined): number {
  if (value === undefined || value === null) return LegacyRequestType.SetTask;
  const n = typeof value === "number" ? value : typeof value === "string" && /^\s*[0-9]+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) throw new CodecError(ErrorCode.BadRequestType, "type must be a request type number");
  return n;
}

/** Decodes `data`: base64 (error 12) of a UTF-8 JSON object (error 13). */
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

/** Decodes the subtasks of a set-task request; each must be a set-task request itself. */
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

/** A subtask's id as an error message names it. */
function describeId(value: Json | undefined): string {
  return typeof value === "number" || (typeof value === "string" && value.length <= 128) ? JSON.stringify(value) : "(no id)";
}

