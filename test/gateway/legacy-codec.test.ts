import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { NodeIdentity } from "../../src/core/api.js";
import { noLimits } from "../../src/domain/task.js";
import type { TaskView } from "../../src/domain/view.js";
import {
  decodeBase64Strict,
  decodeLegacyMessage,
  encodeErrorItem,
  encodeLegacyResponse,
  encodeTaskView,
  toWireId,
  type LegacyDecoded,
  type LegacyRequest,
} from "../../src/gateway/legacy-codec.js";
import { cover, legacyBase64, legacyRequest, uncover } from "./legacy-request-encoder.js";
import { testStatus } from "../helpers/status.js";

interface Scenario {
  steps: { request?: Record<string, unknown>; raw?: string }[];
}

function fixture(name: string): Scenario {
  return JSON.parse(readFileSync(new URL(`../fixtures/legacy-examples/${name}`, import.meta.url), "utf8")) as Scenario;
}

function decode(message: unknown): LegacyDecoded {
  return decodeLegacyMessage(typeof message === "string" ? message : JSON.stringify(message));
}

function decoded(message: unknown): LegacyRequest {
  const result = decode(message);
  if (!result.ok) throw new Error(`expected success, got error ${result.failure.code}: ${result.failure.message}`);
  return result.request;
}

function failure(message: unknown): { id: unknown; type: number; code: number; message: string } {
  const result = decode(message);
  if (result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result.request)}`);
  return result.failure;
}

function setSpec(message: unknown) {
  const request = decoded(message);
  if (request.kind !== "set") throw new Error(`expected a set request, got ${request.kind}`);
  return request.spec;
}

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("utf8");

const session = { type: 0, port: 0, user: "", password: "", shell: "", environment: [], home_dir: "", timeout: 0, tmode: 1, time_max: 0 };

describe("decodeBase64Strict", () => {
  it("accepts the CRLF line breaks of the original clients", () => {
    expect(text(decodeBase64Strict("eyJh\r\nIjox\r\nfQ==")!)).toBe('{"a":1}');
  });

  it("ignores spaces and tabs", () => {
    expect(text(decodeBase64Strict(" e30 =\t")!)).toBe("{}");
  });

  it("accepts missing padding", () => {
    expect(text(decodeBase64Strict("e30")!)).toBe("{}");
  });

  it.each(["!!!not-base64!!!", "e3=0", "e30==", "e===", "a", "abcde", "e30=\u0000", "e30-", "e30_"])("refuses %j", (input) => {
    expect(decodeBase64Strict(input)).toBeUndefined();
  });
});

describe("toWireId", () => {
  it("turns canonical integers into numbers and leaves the rest as strings", () => {
    expect(toWireId("567")).toBe(567);
    expect(toWireId("0")).toBe(0);
    expect(toWireId("007")).toBe("007");
    expect(toWireId("job-1")).toBe("job-1");
    expect(toWireId("99999999999999999999")).toBe("99999999999999999999");
  });
});

describe("decodeLegacyMessage: set task", () => {
  it("decodes Example 1 with environment as an array of objects, merged", () => {
    const spec = setSpec(fixture("01-async-task-lifecycle.json").steps[0]!.request);
    expect(spec.id).toBe("567");
    expect(spec.command).toBe("sort");
    expect(text(spec.input)).toBe("def\nabc\n123\n");
    expect(spec.env).toEqual({ LINES: "80", HOSTNAME: "node22" });
    expect(spec.mode).toBe(2);
    expect(spec.timeMaxMs).toBe(40000);
    expect(spec.session).toEqual({ type: "local" });
    expect(spec.files.map((f) => [f.name, text(f.data), f.action])).toEqual([
      ["file1", "test content of file1\n", 13],
      ["file2", "test content of file2\n", 1],
    ]);
    expect(spec.limits).toEqual(noLimits);
  });

  it("decodes Example 6 with environment as an object", () => {
    const spec = setSpec(fixture("03-sync-sort-files.json").steps[0]!.request);
    expect(spec.env).toEqual({ LINES: "80", HOSTNAME: "node22" });
    expect(spec.mode).toBe(1);
  });

  it("merges an environment array of several multi-key objects in order", () => {
    const spec = setSpec(legacyRequest(0, 1, { command: "env", session: { ...session, environment: [{ A: "1", B: "2" }, { B: "3" }, { C: 4 }] } }));
    expect(spec.env).toEqual({ A: "1", B: "3", C: "4" });
  });

  it("accepts the base64 data without line breaks too", () => {
    expect(setSpec(legacyRequest(0, 1, { command: "true", session }, false)).command).toBe("true");
  });

  it("reads `cpu` as cpu_max (Example 7) and the other limits by their names", () => {
    const spec = setSpec(fixture("04-sync-limits-zero.json").steps[0]!.request);
    expect(spec.limits).toEqual(noLimits);
    const limited = setSpec(legacyRequest(0, 1, { command: "x", session, limits: { cpu: 50, proc_max: 10, disk_usage_max_bytes: 1e9, rram_free: 12.5 } }));
    expect(limited.limits).toMatchObject({ cpuMax: 50, procMax: 10, diskUsageMaxBytes: 1e9, rramFree: 12.5 });
    expect(setSpec(legacyRequest(0, 1, { command: "x", session, limits: { cpu: 50, cpu_max: 70 } })).limits.cpuMax).toBe(70);
  });

  it("takes tmode, time_max and cleanup from the top level of data when session lacks them", () => {
    const spec = setSpec(legacyRequest(0, 1, { command: "x", session: { type: 0 }, tmode: 2, time_max: 5000, cleanup: 1 }));
    expect([spec.mode, spec.timeMaxMs, spec.cleanup]).toEqual([2, 5000, true]);
    const both = setSpec(legacyRequest(0, 1, { command: "x", session: { tmode: 1 }, tmode: 2 }));
    expect(both.mode).toBe(1);
  });

  it("defaults missing fields to zero, empty and sync", () => {
    const spec = setSpec(legacyRequest(0, 5, { command: "x" }));
    expect(spec).toMatchObject({ mode: 1, timeoutSeconds: 0, timeMaxMs: 0, cleanup: false, shell: "", workDir: "", alias: "", argv: [], env: {}, files: [], ttlMs: 0 });
    expect(spec.input).toHaveLength(0);
  });

  it("ignores unknown fields at every level", () => {
    const spec = setSpec({ ...legacyRequest(0, 5, { command: "x", extra: { a: 1 }, session: { ...session, bogus: [1] } }), route: { role: 1 }, zzz: true });
    expect(spec.command).toBe("x");
  });

  it("accepts numbers written as strings (Example 8 sends type \"0\")", () => {
    const spec = setSpec({ ...legacyRequest(0, 5, { command: "x", session: { type: "0", tmode: "2", timeout: "30" } }), type: "0" });
    expect([spec.mode, spec.timeoutSeconds]).toEqual([2, 30]);
  });

  it("treats PHP's empty array as an empty session object", () => {
    expect(setSpec(legacyRequest(0, 5, { command: "x", session: [] })).session).toEqual({ type: "local" });
  });

  it("reads home_directory as home_dir", () => {
    expect(setSpec(legacyRequest(0, 5, { command: "x", session: { home_directory: "/srv/w" } })).workDir).toBe("/srv/w");
  });

  it("makes session type 1 an SSH session on the node's own host by default", () => {
    const spec = setSpec(legacyRequest(0, 5, { command: "id", session: { type: 1, port: 2222, user: "bob", password: "pw", privatekey: "KEY", passphrase: "pp", publickey: "PUB", authtype: 2 } }));
    expect(spec.session).toEqual({ type: "ssh", host: "", port: 2222, user: "bob", password: "pw", privateKey: "KEY", passphrase: "pp", hostFingerprint: "" });
    const pinned = setSpec(legacyRequest(0, 5, { command: "id", session: { type: 1, host: "10.0.0.2", private_key: "K", fingerprint: "SHA256:abc" } }));
    expect(pinned.session).toMatchObject({ host: "10.0.0.2", privateKey: "K", hostFingerprint: "SHA256:abc" });
  });

  it("accepts the alias, ttl and argv extensions", () => {
    const spec = setSpec(legacyRequest(0, 5, { argv: ["ls", "-l"], alias: "nightly", ttl: 60000, session }));
    expect([spec.argv, spec.alias, spec.ttlMs]).toEqual([["ls", "-l"], "nightly", 60000]);
  });

  it("decodes file data as base64 exactly when action bit 31 is set", () => {
    const blob = Uint8Array.from([0, 1, 2, 254, 255]);
    const spec = setSpec(
      legacyRequest(0, 5, {
        command: "x",
        session,
        files: [
          { name: "b.bin", data: legacyBase64(blob), action: 2147483661 },
          { name: "t.txt", data: "AAEC/v8=", action: 13 },
          { name: "n.bin", data: "AAEC/v8=", action: -2147483635 },
        ],
      }),
    );
    expect(spec.files[0]).toEqual({ name: "b.bin", data: blob, action: 2147483661 });
    expect(text(spec.files[1]!.data)).toBe("AAEC/v8=");
    // A 32-bit client's signed action means the same mask.
    expect(spec.files[2]).toEqual({ name: "n.bin", data: blob, action: 2147483661 });
  });

  it("decodes Example 7's bit-31 file (fixture 07)", () => {
    const spec = setSpec(fixture("07-base64-file.json").steps[0]!.request);
    expect(spec.files[0]!.action).toBe(2147483661);
    expect(Array.from(spec.files[0]!.data)).toEqual(Array.from({ length: 256 }, (_, i) => i));
  });

  it("nests subtasks to any depth (fixture 10)", () => {
    const spec = setSpec(fixture("10-async-tree-async-subtasks.json").steps[0]!.request);
    expect(spec.id).toBe("500");
    expect(spec.subtasks.map((s) => s.id)).toEqual(["501", "502"]);
    expect(spec.subtasks.map((s) => s.subtasks.map((t) => t.id))).toEqual([["503", "504"], ["505", "506"]]);
    expect(spec.subtasks[1]!.subtasks[1]!.command).toBe("sort");
  });

  it("accepts a lone subtask given as an object (as Examples 10-12 print it)", () => {
    const spec = setSpec({ ...legacyRequest(0, 1, { command: "x" }), subtasks: legacyRequest(0, 2, { command: "y" }) });
    expect(spec.subtasks.map((s) => s.command)).toEqual(["y"]);
  });

  it("leaves the id empty when a set request has none, for the core to assign", () => {
    const { id: _, ...noId } = legacyRequest(0, 1, { command: "x" });
    const request = decoded(noId);
    expect(request).toMatchObject({ kind: "set", id: 0 });
    expect(request.kind === "set" && request.spec.id).toBe("");
  });
});

describe("decodeLegacyMessage: ids", () => {
  it("accepts numbers, numeric strings and typed-API ids", () => {
    expect(decoded(legacyRequest(1, 567, { type: 1 }))).toMatchObject({ id: 567, ref: "567" });
    expect(decoded(legacyRequest(1, "567", { type: 1 }))).toMatchObject({ id: 567, ref: "567" });
    expect(decoded(legacyRequest(1, "007", { type: 1 }))).toMatchObject({ id: "007", ref: "007" });
    expect(decoded(legacyRequest(1, "build_42.a-b", { type: 1 }))).toMatchObject({ id: "build_42.a-b", ref: "build_42.a-b" });
    expect(decoded(legacyRequest(1, 4294967295, { type: 1 }))).toMatchObject({ id: 4294967295, ref: "4294967295" });
  });

  it.each([[-1], [1.5], ["../etc"], ["a b"], ["."], ["x".repeat(129)], [""]])("refuses id %j with error 14", (id) => {
    expect(failure(legacyRequest(1, id as number, { type: 1 })).code).toBe(14);
  });

  it("refuses an id of the wrong type with error 103", () => {
    expect(failure({ ...legacyRequest(1, 1, { type: 1 }), id: { a: 1 } })).toMatchObject({ code: 103, message: "id must be a number or a string" });
  });

  it("requires an id for every request but set", () => {
    expect(failure({ type: 1, data: legacyBase64('{"type":1}') })).toMatchObject({ code: 103, message: "id is required" });
  });
});

describe("decodeLegacyMessage: check, terminate, get, delete", () => {
  it("decodes check simple and extended", () => {
    expect(decoded(legacyRequest(1, 567, { type: 1 }))).toEqual({ kind: "check", id: 567, ref: "567", extended: false });
    expect(decoded(legacyRequest(1, 567, { type: 2 }))).toEqual({ kind: "check", id: 567, ref: "567", extended: true });
    expect(decoded(legacyRequest(1, 567, {}))).toMatchObject({ kind: "check", extended: false });
  });

  it("decodes terminate with its fields", () => {
    expect(decoded(legacyRequest(2, 568, { alg: 2, cleanup: 1, delay: 500, repeat: 5, signal: 15 }))).toEqual({
      kind: "terminate",
      id: 568,
      ref: "568",
      options: { alg: 2, delayMs: 500, repeat: 5, signal: 15, cleanup: true },
    });
  });

  it("accepts the misspelled key `sinal`", () => {
    const request = decoded(legacyRequest(2, 568, { alg: 2, sinal: 2 }));
    expect(request.kind === "terminate" && request.options.signal).toBe(2);
  });

  it("gives terminate's zero or missing fields their defaults", () => {
    expect(decoded(legacyRequest(2, 568, { alg: 0, delay: 0, repeat: 0, signal: 0 }))).toMatchObject({
      options: { alg: 1, delayMs: 1000, repeat: 3, signal: 9, cleanup: false },
    });
    expect(decoded(legacyRequest(2, 568, {}))).toMatchObject({ options: { alg: 1, delayMs: 1000, repeat: 3, signal: 9 } });
  });

  it("decodes get data: type 1 deletes after fetch, type 2 keeps", () => {
    expect(decoded(legacyRequest(3, 567, { type: 1 }))).toEqual({ kind: "fetch", id: 567, ref: "567", remove: true });
    expect(decoded(legacyRequest(3, 567, { type: 2 }))).toEqual({ kind: "fetch", id: 567, ref: "567", remove: false });
  });

  it("decodes delete (Example 5: data e30=)", () => {
    expect(decoded({ data: "e30=", id: 567, type: 4 })).toEqual({ kind: "delete", id: 567, ref: "567" });
  });
});

describe("decodeLegacyMessage: error codes", () => {
  it.each([
    ["{not json", "not valid JSON"],
    ["", "not valid JSON"],
    ["[1,2]", "not a JSON object"],
    ["42", "not a JSON object"],
    ["null", "not a JSON object"],
  ])("answers %j with error 1", (body, message) => {
    expect(failure(body)).toMatchObject({ code: 1, id: 0 });
    expect(failure(body).message).toContain(message);
  });

  it("answers a body that is not UTF-8 with error 1", () => {
    const result = decodeLegacyMessage(Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d]));
    expect(!result.ok && result.failure.code).toBe(1);
  });

  it("answers bad base64 with error 12, keeping the id and type", () => {
    expect(failure({ type: 0, id: 9001, data: "!!!not-base64!!!" })).toEqual({ id: 9001, type: 0, code: 12, message: "data is not valid base64" });
    expect(failure({ type: 1, id: 9001, data: "e3=0" }).code).toBe(12);
  });

  it("answers bad base64 in a bit-31 file with error 12 naming the file", () => {
    expect(failure(legacyRequest(0, 3, { command: "x", files: [{ name: "f", data: "*", action: 0x80000001 }] }))).toMatchObject({
      code: 12,
      message: "files[0].data is not valid base64 (action bit 31 is set)",
    });
  });

  it.each([
    ["WzEsMg==", "a JSON array"],
    [legacyBase64("not json"), "not JSON"],
    ["/w==", "not UTF-8"],
    ["", "empty data"],
    [legacyBase64('"str"'), "a JSON string"],
  ])("answers data %j (%s) with error 13", (data) => {
    expect(failure({ type: 0, id: 9002, data })).toMatchObject({ id: 9002, code: 13 });
  });

  it("answers a missing data field with error 13 (it defaults to empty)", () => {
    expect(failure({ type: 4, id: 9002 }).code).toBe(13);
  });

  it.each([[77], [5], [100], [101], [-1], ["abc"], [{}], [1.5]])("answers request type %j with error 105", (type) => {
    expect(failure({ type, id: 9003, data: "e30=" })).toMatchObject({ id: 9003, code: 105 });
  });

  it.each([
    [{ command: "x", session: { timeout: "abc" } }, "session.timeout must be a number"],
    [{ command: "x", session: { timeout: -1 } }, "session.timeout must be a non-negative integer"],
    [{ command: "x", session: { timeout: 1.5 } }, "session.timeout must be a non-negative integer"],
    [{ command: "x", session: { tmode: 3 } }, "session.tmode must be an integer from 0 to 2"],
    [{ command: "x", session: { type: 2 } }, "session.type must be an integer from 0 to 1"],
    [{ command: "x", session: { port: 70000 } }, "session.port must be an integer from 0 to 65535"],
    [{ command: "x", session: { user: { a: 1 } } }, "session.user must be a string"],
    [{ command: "x", session: "local" }, "session must be an object"],
    [{ command: "x", session: { environment: "A=1" } }, "session.environment must be an object of name-value pairs"],
    [{ command: "x", session: { environment: [{ A: { b: 1 } }] } }, "session.environment[0].A must be a string"],
    [{ command: "x", session: { cleanup: 2 } }, "session.cleanup must be 0 or 1"],
    [{ command: ["x"] }, "command must be a string"],
    [{ command: "x", input: true }, "input must be a string"],
    [{ command: "x", argv: "ls" }, "argv must be an array of strings"],
    [{ command: "x", files: {} }, "files must be an array"],
    [{ command: "x", files: ["a"] }, "files[0] must be an object"],
    [{ command: "x", files: [{ name: "a", action: "x" }] }, "files[0].action must be a number"],
    [{ command: "x", files: [{ name: "a", action: 2 ** 32 }] }, "files[0].action must be an integer from -2147483648 to 4294967295"],
    [{ command: "x", limits: { cpu_max: "lots" } }, "limits.cpu_max must be a number"],
    [{ command: "x", limits: { proc_max: -5 } }, "limits.proc_max must be a non-negative number"],
    [{ command: "x", limits: 7 }, "limits must be an object"],
    [{ command: "x", ttl: "soon" }, "ttl must be a number"],
  ])("answers set data %j with error 103: %s", (data, message) => {
    expect(failure(legacyRequest(0, 42, data))).toEqual({ id: 42, type: 0, code: 103, message });
  });

  it.each([
    [1, { type: 3 }, "data.type must be an integer from 0 to 2"],
    [1, { type: "x" }, "data.type must be a number"],
    [2, { alg: 3 }, "data.alg must be an integer from 0 to 2"],
    [2, { signal: 65 }, "data.signal must be an integer from 0 to 64"],
    [2, { sinal: "KILL" }, "data.sinal must be a number"],
    [2, { delay: -1 }, "data.delay must be a non-negative integer"],
    [3, { type: [] }, "data.type must be a number"],
  ])("answers type %i data %j with error 103: %s", (type, data, message) => {
    expect(failure(legacyRequest(type, 42, data))).toEqual({ id: 42, type, code: 103, message });
  });

  it("answers data that is not a string with error 103", () => {
    expect(failure({ type: 0, id: 1, data: { command: "x" } })).toMatchObject({ code: 103, message: "data must be a base64 string" });
  });

  it("answers a bad subtask with the top request's id and the subtask named", () => {
    const message = { ...legacyRequest(0, 500, { command: "x" }), subtasks: [{ ...legacyRequest(0, 501, { command: "y" }), subtasks: [{ type: 0, id: 502, data: "%%" }] }] };
    expect(failure(message)).toEqual({ id: 500, type: 0, code: 12, message: "subtask 501: subtask 502: data is not valid base64" });
  });

  it("answers a subtask of another request type with error 105", () => {
    expect(failure({ ...legacyRequest(0, 500, { command: "x" }), subtasks: [legacyRequest(1, 501, { type: 1 })] })).toMatchObject({ id: 500, code: 105 });
  });

  it("answers subtasks of the wrong type with error 103", () => {
    expect(failure({ ...legacyRequest(0, 500, { command: "x" }), subtasks: "none" })).toMatchObject({ code: 103, message: "subtasks must be an array" });
  });

  it("refuses absurd nesting without exhausting the stack", () => {
    let message: Record<string, unknown> = legacyRequest(0, 1, { command: "x" }) as unknown as Record<string, unknown>;
    for (let i = 0; i < 200; i++) message = { ...legacyRequest(0, i + 2, { command: "x" }), subtasks: [message] };
    expect(failure(message).code).toBe(103);
  });

  it("does not throw on deeply nested JSON", () => {
    expect(failure("[".repeat(100000) + "]".repeat(100000)).code).toBe(1);
  });
});

describe("decodeLegacyMessage: the clients' cover", () => {
  const inner = legacyRequest(1, 567, { type: 1 });

  it("unwraps a cover whose data is the request JSON", () => {
    const result = decode(cover(inner, false, 5000));
    expect(result).toEqual({ ok: true, request: { kind: "check", id: 567, ref: "567", extended: false }, cover: { type: 2, ttl: 5000, base64: false } });
  });

  it("unwraps a cover whose data is the request JSON in base64", () => {
    expect(decode(cover(inner, true))).toMatchObject({ ok: true, request: { kind: "check" }, cover: { type: 2, ttl: 30000, base64: true } });
  });

  it("recognises a cover without ttl by the request inside it", () => {
    expect(decode({ type: 2, data: JSON.stringify(inner) })).toMatchObject({ ok: true, cover: { ttl: 0, base64: false } });
    expect(decode({ type: 2, data: legacyBase64(JSON.stringify(inner)) })).toMatchObject({ ok: true, cover: { base64: true } });
  });

  it("does not mistake a terminate request (type 2 too) for a cover", () => {
    expect(decode(legacyRequest(2, 568, { alg: 2, signal: 9 }))).toMatchObject({ ok: true, request: { kind: "terminate" }, cover: undefined });
  });

  it("does not mistake a request with an outer ttl and an id for a cover", () => {
    expect(decode({ ...legacyRequest(0, 5, { command: "x" }), ttl: 100 })).toMatchObject({ ok: true, request: { kind: "set", id: 5 }, cover: undefined });
  });

  it("does not mistake a check whose data holds `type` for a cover", () => {
    expect(decode(legacyRequest(1, 568, { type: 2 }))).toMatchObject({ ok: true, cover: undefined });
  });

  it("reports errors inside a cover with the cover kept for the reply", () => {
    expect(decode({ type: 2, data: "{broken", ttl: 10 })).toMatchObject({ ok: false, failure: { code: 1 }, cover: { ttl: 10 } });
    expect(decode({ type: 2, data: "@@@", ttl: 10 })).toMatchObject({ ok: false, failure: { code: 12 }, cover: { ttl: 10, base64: true } });
    expect(decode({ type: 2, data: legacyBase64("[1]"), ttl: 10 })).toMatchObject({ ok: false, failure: { code: 13 } });
    expect(decode({ type: 2, ttl: 10 })).toMatchObject({ ok: false, failure: { code: 13 } });
    expect(decode(cover({ ...inner, type: 77 }, true))).toMatchObject({ ok: false, failure: { code: 105, id: 567, type: 77 }, cover: { base64: true } });
  });

  it("wraps the reply in the same kind of cover", () => {
    const items = [encodeErrorItem(identity, { id: 1, type: 1, errorCode: 0, message: "", state: 3 })];
    const raw = JSON.parse(encodeLegacyResponse(items, { type: 2, ttl: 7, base64: false })) as { type: number; data: string; ttl: number };
    expect(raw.type).toBe(2);
    expect(raw.ttl).toBe(7);
    expect(JSON.parse(raw.data)).toEqual(items);
    const b64 = encodeLegacyResponse(items, { type: 2, ttl: 7, base64: true });
    expect((JSON.parse(b64) as { data: string }).data).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(uncover(b64)).toEqual(items);
  });
});

const identity: NodeIdentity = { host: "127.0.0.1", port: 8080, node: "node-a" };

const status = testStatus;

describe("encodeTaskView", () => {
  const view: TaskView = {
    status: status({ id: "567", state: 0, pid: 2450, exitStatus: 3, errorCode: 0 }),
    timeMs: 605.4,
    stdout: Buffer.from("123\nabc\ndef\n"),
    stderr: Buffer.from("oops\n"),
    files: [
      { name: "file1", data: Buffer.from("test content of file1\n"), action: 13 },
      { name: "blob", data: Uint8Array.from([0, 255]), action: 0x8000000d },
    ],
    fields: { TASK_CPU: 0, TASK_RRAM: 2121728, TASK_THREADS: 2, HOST_CPU: 55.12 },
    subtasks: [{ status: status({ id: "job-2", state: 8 }), timeMs: 0, subtasks: [] }],
  };

  it("emits every field of the protocol", () => {
    const item = encodeTaskView(view, identity, 1);
    expect(Object.keys(item).sort()).toEqual(
      ["error_code", "error_message", "exit_status", "fields", "files", "host", "id", "node", "pid", "port", "state", "stderr", "stderror", "stdout", "subtasks", "time", "type"].sort(),
    );
    expect(item).toMatchObject({ id: 567, type: 1, host: "127.0.0.1", port: 8080, node: "node-a", state: 0, pid: 2450, exit_status: 3, time: 605 });
  });

  it("base64-encodes stdout and stderr, and repeats stderr as stderror", () => {
    const item = encodeTaskView(view, identity, 3);
    expect(item.stdout).toBe("MTIzCmFiYwpkZWYK");
    expect(item.stderr).toBe(Buffer.from("oops\n").toString("base64"));
    expect(item.stderror).toBe(item.stderr);
  });

  it("writes files as text, or as base64 when bit 31 is set", () => {
    expect(encodeTaskView(view, identity, 3).files).toEqual([
      { name: "file1", data: "test content of file1\n", action: 13 },
      { name: "blob", data: "AP8=", action: 2147483661 },
    ]);
  });

  it("prints fields as the original did, and [] when there are none", () => {
    expect(encodeTaskView(view, identity, 1).fields).toEqual({ TASK_CPU: "0.000000", TASK_RRAM: "2121728", TASK_THREADS: "2", HOST_CPU: "55.120000" });
    expect(encodeTaskView({ ...view, fields: {} }, identity, 1).fields).toEqual([]);
    const { fields: _, ...noFields } = view;
    expect(encodeTaskView(noFields, identity, 1).fields).toEqual([]);
  });

  it("answers empty output as empty strings", () => {
    const item = encodeTaskView({ status: status({}), timeMs: 0, subtasks: [] }, identity, 0);
    expect([item.stdout, item.stderr, item.stderror, item.files, item.subtasks]).toEqual(["", "", "", [], []]);
  });

  it("nests subtasks with their own ids and the request's type", () => {
    const item = encodeTaskView(view, identity, 0);
    expect(item.subtasks).toHaveLength(1);
    expect(item.subtasks[0]).toMatchObject({ id: "job-2", state: 8, type: 0, fields: [], subtasks: [] });
  });

  it("answers with the id as the caller gave it when told", () => {
    expect(encodeTaskView(view, identity, 1, "nightly").id).toBe("nightly");
  });
});

describe("encodeErrorItem", () => {
  it("fills every field, defaults included", () => {
    expect(encodeErrorItem(identity, { id: 9, type: 0, errorCode: 119, message: "limit", state: 6 })).toEqual({
      error_code: 119,
      error_message: "limit",
      exit_status: 0,
      fields: [],
      files: [],
      host: "127.0.0.1",
      id: 9,
      node: "node-a",
      pid: 0,
      port: 8080,
      state: 6,
      stderr: "",
      stderror: "",
      stdout: "",
      subtasks: [],
      time: 0,
      type: 0,
    });
  });
});

describe("decodeLegacyMessage: PHP's empty arrays and the id as it was sent", () => {
  it("reads data [] (base64 W10=, PHP's json_encode(array())) as an empty object", () => {
    expect(decoded({ type: 4, id: 567, data: "W10=", subtasks: [] })).toEqual({ kind: "delete", id: 567, ref: "567" });
    expect(decoded({ type: 1, id: 567, data: "W10=" })).toMatchObject({ kind: "check", extended: false });
    expect(decoded({ type: 3, id: 567, data: "W10=" })).toMatchObject({ kind: "fetch", remove: false });
  });

  it("reads [] as an empty session, limits, environment and file item", () => {
    const spec = setSpec(legacyRequest(0, 1, { command: "true", session: [], limits: [], files: [[]] }));
    expect(spec.limits).toEqual(noLimits);
    expect(spec.env).toEqual({});
    expect(spec.files).toEqual([{ name: "", data: new Uint8Array(0), action: 0 }]);
    expect(setSpec(legacyRequest(0, 1, { command: "true", session: { environment: [] } })).env).toEqual({});
  });

  it("still refuses a non-empty array where an object is expected", () => {
    expect(failure({ type: 4, id: 1, data: "WzFd" }).code).toBe(13);
    expect(failure(legacyRequest(0, 1, { command: "true", files: [[1]] })).code).toBe(103);
  });

  it("keeps a numeric-string id as the string it was, for the reply to echo", () => {
    expect(decoded(legacyRequest(1, "567", { type: 1 }))).toMatchObject({ id: 567, sentId: "567", ref: "567" });
    expect(decoded(legacyRequest(1, 567, { type: 1 }))).not.toHaveProperty("sentId");
    expect(decoded(legacyRequest(1, "007", { type: 1 }))).not.toHaveProperty("sentId");
  });
});
