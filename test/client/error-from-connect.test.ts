import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { errorFromConnect } from "../../src/client/error-from-connect.js";
import { toConnectError } from "../../src/connect/errors.js";
import { DrceError, ErrorCode, type ErrorKind } from "../../src/domain/errors.js";

const kinds: ErrorKind[] = ["invalid", "not-found", "exists", "precondition", "denied", "exhausted", "unavailable", "internal"];

describe("errorFromConnect", () => {
  it.each(kinds)("reads a node's %s error back into its kind, message and legacy code", (kind) => {
    const original = new DrceError(kind, `refused: ${kind}`);
    const back = errorFromConnect(toConnectError(original));
    expect(back).toBeInstanceOf(DrceError);
    expect(back.kind).toBe(kind);
    expect(back.message).toBe(`refused: ${kind}`);
    expect(back.legacyCode).toBe(original.legacyCode);
  });

  it("keeps a legacy code other than the kind's default", () => {
    const back = errorFromConnect(toConnectError(new DrceError("invalid", "bad shell", { legacyCode: ErrorCode.ShellNotExist })));
    expect(back.legacyCode).toBe(15);
    expect(toConnectError(back).code).toBe(Code.InvalidArgument);
  });

  it("keeps the retry-after of a full queue, in milliseconds", () => {
    const back = errorFromConnect(toConnectError(new DrceError("exhausted", "queue full", { retryAfterMs: 2000, legacyCode: ErrorCode.Busy })));
    expect(back.kind).toBe("exhausted");
    expect(back.legacyCode).toBe(123);
    expect(back.retryAfterMs).toBe(2000);
  });

  it("reads a missing token as denied and a lost connection as unavailable", () => {
    expect(errorFromConnect(new ConnectError("token required", Code.Unauthenticated)).kind).toBe("denied");
    expect(errorFromConnect(new ConnectError("gone", Code.Unavailable)).kind).toBe("unavailable");
    expect(errorFromConnect(new ConnectError("slow", Code.DeadlineExceeded)).kind).toBe("unavailable");
  });

  it("reads anything else as internal, with the original as its cause", () => {
    const reason = new Error("socket hang up");
    const back = errorFromConnect(reason);
    expect(back.kind).toBe("internal");
    expect(back.legacyCode).toBe(ErrorCode.InternalFo);
    expect(back.cause).toBe(reason);
  });
});
