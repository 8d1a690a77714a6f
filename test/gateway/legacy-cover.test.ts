import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/domain/errors.js";
import { CoverFailure, unwrapCover } from "../../src/gateway/legacy-cover.js";

const request = { type: 1, id: 42, data: Buffer.from('{"type":0}').toString("base64") };

/** Runs unwrapCover and gives the CoverFailure it throws. */
function coverFailure(outer: Record<string, unknown>): CoverFailure {
  try {
    unwrapCover(outer as never);
  } catch (error) {
    if (error instanceof CoverFailure) return error;
    throw error;
  }
  throw new Error("expected a CoverFailure");
}

describe("the legacy transport cover", () => {
  it("is not found around a plain request, even one with an outer ttl", () => {
    expect(unwrapCover(request)).toBeUndefined();
    expect(unwrapCover({ ...request, ttl: 5 })).toBeUndefined();
  });

  it("unwraps a request held as raw JSON text, keeping the cover's type and ttl", () => {
    expect(unwrapCover({ type: 2, ttl: 30, data: JSON.stringify(request) })).toEqual({ cover: { type: 2, ttl: 30, base64: false }, inner: request });
  });

  it("unwraps a request held as base64 and remembers to answer in base64", () => {
    const data = Buffer.from(JSON.stringify(request)).toString("base64");
    expect(unwrapCover({ type: 2, ttl: "30", data })).toEqual({ cover: { type: 2, ttl: 30, base64: true }, inner: request });
  });

  it("refuses a cover by its ttl whose data holds no request, with the cover kept for the reply", () => {
    const cases: [Record<string, unknown>, number, string][] = [
      [{ type: 2, ttl: 1 }, ErrorCode.UnserializationBadJson, "the cover has no data"],
      [{ type: 2, ttl: 1, data: 5 }, ErrorCode.BadInput, "the cover's data must be a string"],
      [{ type: 2, ttl: 1, data: "{nope" }, ErrorCode.Parse, "the cover's data is not valid JSON"],
      [{ type: 2, ttl: 1, data: "*not base64*" }, ErrorCode.Unserialization, "the cover's data is not valid base64"],
      [{ type: 2, ttl: 1, data: Buffer.from("[1]").toString("base64") }, ErrorCode.UnserializationBadJson, "the cover's data is not a request object"],
    ];
    for (const [outer, code, message] of cases) {
      const failure = coverFailure(outer);
      expect(failure.code).toBe(code);
      expect(failure.message).toBe(message);
      expect(failure.cover).toEqual({ type: 2, ttl: 1, base64: typeof outer["data"] === "string" && !outer["data"].startsWith("{") });
    }
  });
});
