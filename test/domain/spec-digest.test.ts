import { describe, expect, it } from "vitest";
import { specDigest, storedSpecDigest, toStoredSpec } from "../../src/domain/spec-json.js";
import { noLimits, type TaskSpec } from "../../src/domain/task.js";

const spec: TaskSpec = {
  id: "t1",
  alias: "a",
  command: "echo hi",
  argv: ["x", "y"],
  input: Buffer.from("in"),
  env: { B: "2", A: "1" },
  workDir: "",
  shell: "",
  session: { type: "local" },
  mode: 1,
  timeoutSeconds: 5,
  timeMaxMs: 0,
  cleanup: true,
  files: [{ name: "f.txt", data: Buffer.from("data"), action: 1 }],
  limits: { ...noLimits },
  subtasks: [],
  ttlMs: 0,
  openStdin: false,
} as TaskSpec;

describe("the digest of a request", () => {
  // Digests are stored with each task and compared with those of later submissions of the
  // same id, also after a restart of a newer build: the values below were taken from the
  // first form of the digest and must never change.
  it("is the digest earlier builds stored for the same request", () => {
    expect(specDigest(spec)).toBe("d7159fba1adf4a8f167215134f8262d29535374613d479366863f21d4f722f3c");
    expect(specDigest({ ...spec, subtasks: [{ ...spec, id: "t2" }] })).toBe("9e2332d075e762bc386edcb28aaab586365399c00aeaed24033145c9d37781dd");
  });

  it("is the same from the stored form as from the request", () => {
    expect(storedSpecDigest(toStoredSpec(spec))).toBe(specDigest(spec));
  });

  it("does not depend on the order of the environment's keys", () => {
    expect(specDigest({ ...spec, env: { A: "1", B: "2" } })).toBe(specDigest(spec));
  });

  it("differs when anything the request stores differs", () => {
    expect(specDigest({ ...spec, argv: ["x", "z"] })).not.toBe(specDigest(spec));
    expect(specDigest({ ...spec, input: Buffer.from("other") })).not.toBe(specDigest(spec));
    expect(specDigest({ ...spec, env: { A: "1" } })).not.toBe(specDigest(spec));
  });
});
