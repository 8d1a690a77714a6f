import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FileAction, taskSpec, type FileSpec, type Limits, type Session, type TaskSpec } from "../../src/domain/task.js";
import { isValidTaskId } from "../../src/domain/validate.js";
import { decodeBase64Strict, decodeLegacyMessage, encodeBase64 } from "../../src/gateway/legacy-codec.js";
import { cover, encodeSetRequest, legacyBase64, type EncodeStyle } from "./legacy-request-encoder.js";

const params = { seed: 42, numRuns: 300 } as const;
const utf8 = new TextEncoder();

const anyText = fc.string({ unit: "binary", maxLength: 40 });
const idArb = fc.oneof(
  fc.constant(""),
  fc.nat().map(String),
  fc.stringMatching(/^[A-Za-z0-9._-]{1,24}$/).filter(isValidTaskId),
);
const aliasArb = fc.oneof(fc.constant(""), fc.stringMatching(/^[A-Za-z0-9._-]{1,24}$/).filter(isValidTaskId));
const envArb = fc.dictionary(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,12}$/), anyText, { maxKeys: 5 });
const nonNegative = fc.oneof(fc.nat(), fc.double({ min: 0, max: 1e12, noNaN: true, noDefaultInfinity: true }).map((v) => v + 0));

const limitsArb: fc.Arbitrary<Limits> = fc.record({
  procMax: nonNegative,
  threadsMax: nonNegative,
  cpuMax: nonNegative,
  iowaitMax: nonNegative,
  vramFree: nonNegative,
  vramFreeMin: nonNegative,
  rramFree: nonNegative,
  rramFreeMin: nonNegative,
  diskFree: nonNegative,
  diskFreeMin: nonNegative,
  iowaitUsageMax: nonNegative,
  vramUsageMax: nonNegative,
  rramUsageMax: nonNegative,
  diskUsageMax: nonNegative,
  diskUsageMaxBytes: nonNegative,
});

const sessionArb: fc.Arbitrary<Session> = fc.oneof(
  fc.constant<Session>({ type: "local" }),
  fc.record({
    type: fc.constant("ssh" as const),
    host: anyText,
    port: fc.integer({ min: 0, max: 65535 }),
    user: anyText,
    password: anyText,
    privateKey: anyText,
    passphrase: anyText,
    hostFingerprint: anyText,
  }),
);

// Bit 31 decides the file's wire form: any bytes when set, UTF-8 text otherwise.
const fileArb: fc.Arbitrary<FileSpec> = fc
  .record({ name: anyText, action: fc.nat({ max: 0xffffffff }), bytes: fc.uint8Array({ maxLength: 64 }), text: anyText })
  .map(({ name, action, bytes, text }) => ({ name, action, data: (action & FileAction.Base64) !== 0 ? bytes : utf8.encode(text) }));

const specFields = {
  id: idArb,
  alias: aliasArb,
  command: anyText,
  argv: fc.array(anyText, { maxLength: 4 }),
  input: anyText.map((s) => utf8.encode(s)),
  env: envArb,
  workDir: anyText,
  shell: anyText,
  session: sessionArb,
  mode: fc.constantFrom(1 as const, 2 as const),
  timeoutSeconds: fc.nat(),
  timeMaxMs: fc.nat(),
  cleanup: fc.boolean(),
  files: fc.array(fileArb, { maxLength: 3 }),
  limits: limitsArb,
  ttlMs: fc.nat(),
};

/** Every TaskSpec the legacy wire can express: all but open_stdin, which it has no field for. */
const specArb: fc.Arbitrary<TaskSpec> = fc.letrec<{ spec: TaskSpec }>((tie) => ({
  spec: fc
    .record({ ...specFields, subtasks: fc.oneof({ depthSize: "small", withCrossShrink: true }, fc.constant([]), fc.array(tie("spec"), { maxLength: 3 })) })
    .map((fields) => taskSpec(fields)),
})).spec;

const styleArb: fc.Arbitrary<EncodeStyle> = fc.record({ idAsString: fc.boolean(), envAsArray: fc.boolean(), modeAtTop: fc.boolean(), crlf: fc.boolean() });

describe("legacy codec properties", () => {
  it("decodes every encodable TaskSpec back to the same spec, in any client style", () => {
    fc.assert(
      fc.property(specArb, styleArb, (spec, style) => {
        const result = decodeLegacyMessage(JSON.stringify(encodeSetRequest(spec, style)));
        expect(result.ok).toBe(true);
        if (result.ok && result.request.kind === "set") expect(result.request.spec).toEqual(spec);
        else throw new Error("not a set request");
      }),
      params,
    );
  });

  it("decodes a spec the same inside a cover, raw or base64", () => {
    fc.assert(
      fc.property(specArb, fc.boolean(), fc.nat(), (spec, base64, ttl) => {
        const result = decodeLegacyMessage(Buffer.from(JSON.stringify(cover(encodeSetRequest(spec), base64, ttl))));
        expect(result).toMatchObject({ ok: true, cover: { type: 2, ttl, base64 } });
        expect(result.ok && result.request.kind === "set" && result.request.spec).toEqual(spec);
      }),
      params,
    );
  });

  it("round-trips any bytes through base64, with or without CRLF breaks", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, crlf) => {
        expect(decodeBase64Strict(legacyBase64(bytes, crlf))).toEqual(bytes);
        expect(decodeBase64Strict(encodeBase64(bytes))).toEqual(bytes);
      }),
      params,
    );
  });

  it("never throws on random bytes, and always answers them with an error", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const result = decodeLegacyMessage(bytes);
        expect(result.ok).toBe(false);
        if (!result.ok) expect([1, 12, 13, 14, 103, 105]).toContain(result.failure.code);
      }),
      params,
    );
  });

  it("never throws on random strings, and always answers them with an error", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (body) => {
        expect(decodeLegacyMessage(body).ok).toBe(false);
      }),
      params,
    );
  });

  it("never throws on random JSON values, and always answers them with an error", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const result = decodeLegacyMessage(JSON.stringify(value));
        expect(result.ok).toBe(false);
        if (!result.ok) {
          expect(typeof result.failure.message).toBe("string");
          expect(Number.isInteger(result.failure.code)).toBe(true);
        }
      }),
      params,
    );
  });

  it("never throws on request-shaped messages with random field values", () => {
    const field = fc.oneof(fc.jsonValue(), fc.nat(), anyText);
    const data = fc.oneof(
      fc.jsonValue().map((v) => legacyBase64(JSON.stringify(v) ?? "")),
      fc.dictionary(fc.constantFrom("session", "command", "files", "limits", "input", "type", "alg", "sinal", "argv", "environment"), fc.jsonValue()).map((v) => legacyBase64(JSON.stringify(v))),
      fc.string(),
    );
    const message = fc.record(
      { type: fc.oneof(fc.integer({ min: -1, max: 6 }), field), id: fc.oneof(fc.nat(), field), data, subtasks: fc.oneof(fc.constant([]), field), ttl: field },
      { requiredKeys: ["type", "data"] },
    );
    fc.assert(
      fc.property(message, (m) => {
        const result = decodeLegacyMessage(JSON.stringify(m));
        expect(typeof result.ok).toBe("boolean");
      }),
      params,
    );
  });
});
