import { ErrorCode } from "../domain/errors.js";
import { decodeBase64Strict } from "./legacy-base64.js";
import { CodecError, echoableNumber, echoableType, isObject, strictUtf8, type Json, type JsonObject } from "./legacy-json-fields.js";
import type { LegacyCover } from "./legacy-wire.js";

/**
 * Unwraps the original clients' transport cover when `outer` is one: a body with a `ttl` key
 * and no `id` key, or whose `data` (raw JSON text, or base64 of JSON) is an object holding
 * `type` and `id` or `data`. Gives undefined for a plain request; throws a {@link CoverFailure}
 * for a cover whose data holds no usable request, so the reply still goes back in a cover.
 */
export function unwrapCover(outer: JsonObject): { cover: LegacyCover; inner: JsonObject } | undefined {
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
export class CoverFailure extends CodecError {
  override name = "CoverFailure";
  constructor(
    readonly cover: LegacyCover,
    failure: CodecError,
  ) {
    super(failure.code, failure.message);
  }
}

