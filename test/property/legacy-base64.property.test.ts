import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/domain/errors.js";
import { decodeBase64Strict, decodeLegacyMessage } from "../../src/gateway/legacy-codec.js";

/*
 * Base64 on the legacy wire is decoded strictly enough that garbage is an error (12 for bad
 * base64, 13 for base64 that is not a JSON object), while the line breaks of the original
 * clients (CRLF every 76 characters, PHP's chunk_split) and stray whitespace are accepted.
 * (test/gateway/legacy-codec.property.test.ts covers round trips of valid base64.)
 */

const params = { seed: 42, numRuns: 1000 } as const;
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

const b64 = (text: string | Uint8Array): string => Buffer.from(text).toString("base64");
/** A set request whose data is the given text. */
const setMessage = (data: string): string => JSON.stringify({ type: 0, id: 4242, data });
const codeOf = (body: string): number | "ok" => {
  const result = decodeLegacyMessage(body);
  return result.ok ? "ok" : result.failure.code;
};

/** Valid base64 of a small set request. */
const validData = fc.record({ command: fc.string({ minLength: 1, maxLength: 60 }).filter((c) => !c.includes("\0")), tmode: fc.constantFrom(1, 2) })
  .map(({ command, tmode }) => b64(JSON.stringify({ session: { tmode }, command })));

/** A character that is neither base64 nor whitespace nor padding. */
const foreign = fc.string({ unit: "binary", minLength: 1, maxLength: 1 }).filter((c) => !alphabet.includes(c) && !"=\r\n\t ".includes(c));

describe("legacy base64 strictness (properties)", () => {
  it("refuses a character outside the alphabet anywhere, with error 12", () => {
    fc.assert(
      fc.property(validData, foreign, fc.nat(), (data, bad, at) => {
        const spoiled = data.slice(0, at % (data.length + 1)) + bad + data.slice(at % (data.length + 1));
        expect(decodeBase64Strict(spoiled)).toBeUndefined();
        expect(codeOf(setMessage(spoiled))).toBe(ErrorCode.Unserialization);
      }),
      params,
    );
  });

  it("refuses padding in the middle and lengths no padding explains, with error 12", () => {
    fc.assert(
      fc.property(validData, fc.integer({ min: 1, max: 1000 }), (data, at) => {
        const body = data.replace(/=+$/, "");
        const cut = 1 + (at % Math.max(1, body.length - 1));
        // "=" followed by more alphabet characters.
        const midPadding = `${body.slice(0, cut)}=${body.slice(cut)}`;
        expect(decodeBase64Strict(midPadding)).toBeUndefined();
        expect(codeOf(setMessage(midPadding))).toBe(ErrorCode.Unserialization);
        // One character past a multiple of four encodes no whole byte.
        const dangling = body.slice(0, Math.floor(body.length / 4) * 4) + "A";
        expect(decodeBase64Strict(dangling)).toBeUndefined();
        expect(codeOf(setMessage(dangling))).toBe(ErrorCode.Unserialization);
      }),
      params,
    );
  });

  it("answers valid base64 of anything but a JSON object with error 13", () => {
    const notAnObject = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 64 }).filter((bytes) => {
        try {
          const value: unknown = JSON.parse(Buffer.from(bytes).toString("utf8"));
          return typeof value !== "object" || value === null || (Array.isArray(value) && value.length > 0);
        } catch {
          return true;
        }
      }),
      // An empty array is PHP's empty object (json_encode(array()) is "[]"), so it is an object here.
      fc.oneof(fc.integer(), fc.string(), fc.array(fc.nat(), { minLength: 1 }), fc.constant(null), fc.boolean()).map((v) => new TextEncoder().encode(JSON.stringify(v))),
    );
    fc.assert(
      fc.property(notAnObject, (bytes) => {
        expect(codeOf(setMessage(b64(bytes)))).toBe(ErrorCode.UnserializationBadJson);
      }),
      params,
    );
  });

  it("accepts CRLF every 76 characters and whitespace anywhere, decoding the same request", () => {
    fc.assert(
      fc.property(validData, fc.array(fc.tuple(fc.nat(), fc.constantFrom("\r\n", "\n", " ", "\t", "\r\n ")), { maxLength: 6 }), (data, breaks) => {
        const reference = decodeLegacyMessage(setMessage(data));
        expect(reference.ok).toBe(true);
        const wrapped = (data.match(/.{1,76}/g) ?? []).join("\r\n");
        let spaced = data;
        for (const [at, space] of breaks) {
          const i = at % (spaced.length + 1);
          spaced = spaced.slice(0, i) + space + spaced.slice(i);
        }
        for (const variant of [wrapped, `${wrapped}\r\n`, spaced]) {
          const decoded = decodeLegacyMessage(setMessage(variant));
          expect(decoded).toEqual(reference);
        }
      }),
      params,
    );
  });
});
