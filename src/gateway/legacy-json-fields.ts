import { ErrorCode } from "../domain/errors.js";
import { toWireId, type LegacyWireId } from "./legacy-wire.js";

/*
 * Readers of the fields of a legacy JSON message. Each gives undefined for a missing or null
 * field and throws a CodecError 103 (bad input) naming the field's path for a wrong type, so
 * that the decoders read as the protocol's field tables.
 */

/** A parsed JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** A parsed JSON object. */
export type JsonObject = { [key: string]: Json };

/** An expected decoding problem with the legacy error code to answer it; the decoders turn it into a failure value. */
export class CodecError extends Error {
  override name = "CodecError";
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** A UTF-8 decoder that refuses malformed bytes instead of replacing them. */
export const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** The value of `key`, or undefined when it is missing or null (both count as missing). */
export function readAny(from: JsonObject, key: string): Json | undefined {
  const value = Object.prototype.hasOwnProperty.call(from, key) ? from[key] : undefined;
  return value === null ? undefined : value;
}

/** An object field; an empty array (PHP's empty associative array) is an empty object; anything else is error 103. */
export function readObject(from: JsonObject, key: string, path: string): JsonObject | undefined {
  const value = readAny(from, key);
  if (value === undefined) return undefined;
  // PHP's json_encode writes an empty associative array as [].
  if (Array.isArray(value) && value.length === 0) return {};
  if (!isObject(value)) throw new CodecError(ErrorCode.BadInput, `${path} must be an object`);
  return value;
}

/** A string field; a number is taken as its decimal text; anything else is error 103. */
export function readString(from: JsonObject, key: string, path: string): string | undefined {
  const value = readAny(from, key);
  if (value === undefined) return undefined;
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  throw new CodecError(ErrorCode.BadInput, `${path} must be a string`);
}

/** An array of strings, or [] when missing; anything else is error 103. */
export function readStringArray(from: JsonObject, key: string, path: string): string[] {
  const value = readAny(from, key);
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new CodecError(ErrorCode.BadInput, `${path} must be an array of strings`);
  }
  return value as string[];
}

/** A non-negative finite number, given as a number or a decimal string; anything else is error 103. */
export function readNumber(from: JsonObject, key: string, path: string): number | undefined {
  const value = readAny(from, key);
  if (value === undefined) return undefined;
  let n: number;
  if (typeof value === "number") n = value;
  else if (typeof value === "string" && /^\s*-?[0-9]+(\.[0-9]+)?\s*$/.test(value)) n = Number(value);
  else throw new CodecError(ErrorCode.BadInput, `${path} must be a number`);
  if (!Number.isFinite(n) || n < 0) throw new CodecError(ErrorCode.BadInput, `${path} must be a non-negative number`);
  return n;
}

/** A safe integer from `min` to `max`, given as a number or a decimal string; anything else is error 103. */
export function readInt(from: JsonObject, key: string, path: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
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

/** A boolean given as true/false, 0/1, "0"/"1" or ""; anything else is error 103. */
export function readBool(from: JsonObject, key: string, path: string): boolean | undefined {
  const value = readAny(from, key);
  if (value === undefined) return undefined;
  if (typeof value === "boolean") return value;
  if (value === 0 || value === "0" || value === "") return false;
  if (value === 1 || value === "1") return true;
  throw new CodecError(ErrorCode.BadInput, `${path} must be 0 or 1`);
}

/** True for a JSON object (not an array, not null). */
export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The id to put in an error item: the request's own when it is a plain value, else 0. */
export function echoableId(value: Json | undefined): LegacyWireId {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && value.length <= 128) return toWireId(value);
  return 0;
}

/** The type to put in an error item: the request's own when it is a plain number, else 0. */
export function echoableType(value: Json | undefined): number {
  if (typeof value === "number" && Number.isSafeInteger(value)) return value;
  if (typeof value === "string" && /^[0-9]{1,9}$/.test(value)) return Number(value);
  return 0;
}

/** A number to echo back (a cover's ttl): the value when it is a plain number, else 0. */
export function echoableNumber(value: Json | undefined): number {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && /^[0-9]{1,15}$/.test(value)) return Number(value);
  return 0;
}
