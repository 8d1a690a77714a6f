/*
 * The legacy DRCE wire format (seed 000, "Request protocol" / "Response protocol"), decoded
 * into domain values and encoded back. Pure: no I/O, no clock, never throws to its caller.
 * This module is the codec's one import for its users; its parts live beside it:
 * legacy-wire.ts (the wire's shapes), legacy-base64.ts, legacy-json-fields.ts (field readers),
 * legacy-cover.ts (the transport cover), legacy-task-data.ts (set-task and terminate data),
 * legacy-request.ts (decoding a message) and legacy-result.ts (building replies).
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

export { decodeBase64Strict, encodeBase64 } from "./legacy-base64.js";
export { decodeLegacyMessage, type LegacyDecoded, type LegacyDecodeFailure, type LegacyRequest } from "./legacy-request.js";
export { encodeDecodeFailure, encodeErrorItem, encodeFileItem, encodeLegacyResponse, encodeTaskView, formatFieldValue, type LegacyErrorItemInit } from "./legacy-result.js";
export { LegacyRequestType, toWireId, type LegacyCover, type LegacyFileItem, type LegacyResultItem, type LegacyWireId } from "./legacy-wire.js";
