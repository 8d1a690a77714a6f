import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/domain/errors.js";
import {
  CodecError,
  echoableId,
  echoableNumber,
  echoableType,
  readBool,
  readInt,
  readNumber,
  readObject,
  readString,
  readStringArray,
  type JsonObject,
} from "../../src/gateway/legacy-json-fields.js";

/** Runs `read` and gives the CodecError it throws, failing when it throws nothing or anything else. */
function refusal(read: () => unknown): CodecError {
  try {
    read();
  } catch (error) {
    if (error instanceof CodecError) return error;
    throw error;
  }
  throw new Error("expected a CodecError");
}

describe("legacy JSON field readers", () => {
  const from: JsonObject = { n: 7, s: "7", text: "x", nil: null, list: ["a", "b"], empty: [], obj: { a: 1 }, t: true, one: "1", zero: 0, neg: -1, frac: "1.5" };

  it("treat a missing field and a null one alike, as missing", () => {
    expect(readString(from, "absent", "absent")).toBeUndefined();
    expect(readString(from, "nil", "nil")).toBeUndefined();
    expect(readInt(from, "nil", "nil")).toBeUndefined();
    expect(readObject(from, "nil", "nil")).toBeUndefined();
    expect(readStringArray(from, "nil", "nil")).toEqual([]);
  });

  it("take numbers as decimal strings and strings of numbers as numbers, as PHP clients send them", () => {
    expect(readString(from, "n", "n")).toBe("7");
    expect(readInt(from, "s", "s")).toBe(7);
    expect(readNumber(from, "frac", "frac")).toBe(1.5);
    expect(readBool(from, "one", "one")).toBe(true);
    expect(readBool(from, "zero", "zero")).toBe(false);
    expect(readBool(from, "t", "t")).toBe(true);
  });

  it("read PHP's empty array as an empty object", () => {
    expect(readObject(from, "empty", "empty")).toEqual({});
    expect(readObject(from, "obj", "obj")).toEqual({ a: 1 });
  });

  it("refuse a field of the wrong type with error 103 naming its path", () => {
    for (const [read, path] of [
      [() => readString(from, "obj", "session.user"), "session.user must be a string"],
      [() => readInt(from, "text", "session.port"), "session.port must be a number"],
      [() => readInt(from, "n", "session.type", 0, 1), "session.type must be an integer from 0 to 1"],
      [() => readInt(from, "neg", "ttl"), "ttl must be a non-negative integer"],
      [() => readNumber(from, "neg", "limits.cpu_max"), "limits.cpu_max must be a non-negative number"],
      [() => readBool(from, "n", "cleanup"), "cleanup must be 0 or 1"],
      [() => readObject(from, "list", "limits"), "limits must be an object"],
      [() => readStringArray(from, "obj", "argv"), "argv must be an array of strings"],
    ] as const) {
      const error = refusal(read);
      expect(error.code).toBe(ErrorCode.BadInput);
      expect(error.message).toBe(path);
    }
  });

  it("echo a request's own id, type and ttl into an error item only when they are plain values", () => {
    expect(echoableId(42)).toBe(42);
    expect(echoableId("42")).toBe(42);
    expect(echoableId("build-1")).toBe("build-1");
    expect(echoableId({ a: 1 })).toBe(0);
    expect(echoableId("x".repeat(129))).toBe(0);
    expect(echoableType("3")).toBe(3);
    expect(echoableType(1.5)).toBe(0);
    expect(echoableNumber("60")).toBe(60);
    expect(echoableNumber(null)).toBe(0);
  });
});
