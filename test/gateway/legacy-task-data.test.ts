import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/domain/errors.js";
import { defaultTerminate, noLimits } from "../../src/domain/task.js";
import { CodecError } from "../../src/gateway/legacy-json-fields.js";
import { decodeSetData, decodeTerminateData } from "../../src/gateway/legacy-task-data.js";

/** Runs `read` and gives the CodecError it throws. */
function refusal(read: () => unknown): CodecError {
  try {
    read();
  } catch (error) {
    if (error instanceof CodecError) return error;
    throw error;
  }
  throw new Error("expected a CodecError");
}

describe("legacy set-task data", () => {
  it("reads the protocol's fields and aliases into a task spec", () => {
    const spec = decodeSetData(
      {
        command: "echo hi",
        session: { tmode: 2, home_directory: "/tmp", environment: [{ A: "1" }, { B: 2 }], timeout: 5, privatekey: "KEY", type: 1, user: "u", host: "h" },
        limits: { cpu: 50, proc_max: 3 },
        time_max: 900,
        files: [{ name: "f", data: Buffer.from("x").toString("base64"), action: 2147483648 }],
      },
      "7",
      [],
    );
    expect(spec).toMatchObject({ id: "7", command: "echo hi", mode: 2, workDir: "/tmp", env: { A: "1", B: "2" }, timeoutSeconds: 5, timeMaxMs: 900 });
    expect(spec.session).toMatchObject({ type: "ssh", user: "u", host: "h", privateKey: "KEY" });
    expect(spec.limits).toEqual({ ...noLimits, cpuMax: 50, procMax: 3 });
    expect(Buffer.from(spec.files[0]!.data).toString()).toBe("x");
  });

  it("refuses a run-as user on an SSH session and bad base64 in a file, with their codes", () => {
    expect(refusal(() => decodeSetData({ session: { type: 1, uid: 5 } }, "1", [])).code).toBe(ErrorCode.BadInput);
    const file = refusal(() => decodeSetData({ files: [{ name: "f", data: "*", action: 2147483648 }] }, "1", []));
    expect(file.code).toBe(ErrorCode.Unserialization);
    expect(file.message).toMatch(/files\[0\]\.data is not valid base64/);
  });
});

describe("legacy terminate data", () => {
  it("gives the defaults for zero or missing fields and reads the misspelled sinal", () => {
    expect(decodeTerminateData({})).toEqual({ ...defaultTerminate, alg: 1, cleanup: false });
    expect(decodeTerminateData({ alg: 2, delay: 10, repeat: 2, sinal: 15, cleanup: 1 })).toEqual({ alg: 2, delayMs: 10, repeat: 2, signal: 15, cleanup: true });
  });

  it("refuses a signal out of range with error 103", () => {
    expect(refusal(() => decodeTerminateData({ signal: 99 })).code).toBe(ErrorCode.BadInput);
  });
});
