import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DrceError, ErrorCode } from "../../src/domain/errors.js";
import type { LegacyResultItem } from "../../src/gateway/legacy-codec.js";
import { createLegacyHandler, type LegacyLogger } from "../../src/gateway/legacy-handler.js";
import { createFakeCore, testIdentity, testStatus, viewOf, type FakeBehaviour } from "./fake-core.js";
import { cover, legacyRequest, uncover } from "./legacy-request-encoder.js";

function setup(behaviour: FakeBehaviour = {}) {
  const logged: { obj: object; msg: string | undefined }[] = [];
  const logger: LegacyLogger = {
    warn: (obj, msg) => logged.push({ obj, msg }),
    error: (obj, msg) => logged.push({ obj, msg }),
  };
  const core = createFakeCore(behaviour);
  const handler = createLegacyHandler({ core, identity: testIdentity, logger });
  const send = async (message: unknown): Promise<LegacyResultItem> => {
    const reply = await handler.handle(typeof message === "string" ? message : JSON.stringify(message));
    expect(reply.status).toBe(200);
    const items = JSON.parse(reply.body) as LegacyResultItem[];
    expect(items).toHaveLength(1);
    return items[0]!;
  };
  return { core, handler, send, logged };
}

const sortTask = { session: { type: 0, tmode: 1 }, command: "sort", input: "b\na\n" };

describe("legacy handler", () => {
  it("submits a set request and answers with the task's item", async () => {
    const { core, send } = setup();
    const item = await send(legacyRequest(0, 2345, sortTask));
    expect(core.calls).toMatchObject([{ method: "submit", spec: { id: "2345", command: "sort" } }]);
    expect(item).toMatchObject({ id: 2345, type: 0, state: 0, error_code: 0, host: "127.0.0.1", port: 8470, node: "test-node" });
  });

  it("nests the subtasks' items as the core's view nests them", async () => {
    const { send } = setup();
    const item = await send({ ...legacyRequest(0, 500, sortTask), subtasks: [legacyRequest(0, 501, sortTask), { ...legacyRequest(0, 502, sortTask), subtasks: [legacyRequest(0, 505, sortTask)] }] });
    expect(item.subtasks.map((s) => s.id)).toEqual([501, 502]);
    expect(item.subtasks[1]!.subtasks.map((s) => s.id)).toEqual([505]);
  });

  it("answers a set request without id with the id the core assigned", async () => {
    const { send } = setup({ submit: (spec) => ({ view: viewOf({ ...spec, id: "a1b2" }, 2), existing: false }) });
    const { id: _, ...noId } = legacyRequest(0, 1, sortTask);
    expect(await send(noId)).toMatchObject({ id: "a1b2", state: 2 });
  });

  it("passes the abort signal to a sync submission", async () => {
    const { core, handler } = setup();
    const controller = new AbortController();
    await handler.handle(JSON.stringify(legacyRequest(0, 1, sortTask)), controller.signal);
    expect(core.calls[0]).toMatchObject({ method: "submit", signal: controller.signal });
  });

  it("maps check simple and extended to core.check", async () => {
    const { core, send } = setup({ check: (ref, extended) => ({ status: testStatus({ id: ref, state: 1 }), timeMs: 5, subtasks: [], ...(extended ? { fields: { HOST_CPU: 1.5 } } : {}) }) });
    expect(await send(legacyRequest(1, 567, { type: 1 }))).toMatchObject({ state: 1, type: 1, fields: [] });
    expect(await send(legacyRequest(1, 567, { type: 2 }))).toMatchObject({ fields: { HOST_CPU: "1.500000" } });
    expect(core.calls).toEqual([
      { method: "check", ref: "567", extended: false },
      { method: "check", ref: "567", extended: true },
    ]);
  });

  it("maps get data type 1 to fetch-and-delete, type 2 to fetch", async () => {
    const { core, send } = setup({ fetch: (ref) => ({ status: testStatus({ id: ref }), timeMs: 7, stdout: Buffer.from("hi\n"), subtasks: [] }) });
    expect(await send(legacyRequest(3, 567, { type: 1 }))).toMatchObject({ stdout: "aGkK", type: 3, time: 7 });
    await send(legacyRequest(3, 567, { type: 2 }));
    expect(core.calls).toEqual([
      { method: "fetch", ref: "567", remove: true },
      { method: "fetch", ref: "567", remove: false },
    ]);
  });

  it("maps terminate with its options and delete", async () => {
    const { core, send } = setup();
    expect(await send(legacyRequest(2, 568, { alg: 2, sinal: 15 }))).toMatchObject({ state: 4, type: 2 });
    expect(await send(legacyRequest(4, 568, {}))).toMatchObject({ state: 9, type: 4 });
    expect(core.calls).toEqual([
      { method: "terminate", ref: "568", options: { alg: 2, delayMs: 1000, repeat: 3, signal: 15, cleanup: false } },
      { method: "remove", ref: "568" },
    ]);
  });

  it("answers terminating a finished task with its current state and no error", async () => {
    const { core, send } = setup({
      terminate: () => {
        throw new DrceError("precondition", "task 568 is not running (state 0)", { legacyCode: ErrorCode.Terminate });
      },
      check: (ref) => ({ status: testStatus({ id: ref, state: 0, exitStatus: 0 }), timeMs: 30, subtasks: [] }),
    });
    expect(await send(legacyRequest(2, 568, {}))).toMatchObject({ id: 568, type: 2, state: 0, error_code: 0, error_message: "", time: 30 });
    expect(core.calls.map((c) => c.method)).toEqual(["terminate", "check"]);
  });

  it("answers deleting a running task with its state and the core's error", async () => {
    const { send } = setup({
      remove: () => {
        throw new DrceError("precondition", "task 9 is still running; terminate it first", { legacyCode: ErrorCode.DeleteData });
      },
      check: (ref) => ({ status: testStatus({ id: ref, state: 1, pid: 77 }), timeMs: 3, subtasks: [] }),
    });
    expect(await send(legacyRequest(4, 9, {}))).toMatchObject({ state: 1, pid: 77, error_code: 121, error_message: "task 9 is still running; terminate it first" });
  });

  it("answers an unknown task with state 3 and no error", async () => {
    const { send } = setup({
      check: (ref) => {
        throw new DrceError("not-found", `no task ${ref}`);
      },
    });
    expect(await send(legacyRequest(1, 9004, { type: 1 }))).toMatchObject({ id: 9004, type: 1, state: 3, error_code: 0, error_message: "" });
  });

  it.each([
    ["invalid", ErrorCode.BadInput],
    ["invalid", ErrorCode.FileCreate],
    ["exists", ErrorCode.CreateTask],
    ["unavailable", ErrorCode.InternalFo],
  ] as const)("answers a refused submission (%s, %i) with state 6 and the legacy code", async (kind, legacyCode) => {
    const { send } = setup({
      submit: () => {
        throw new DrceError(kind, "refused for a reason", { legacyCode });
      },
    });
    expect(await send(legacyRequest(0, 3, sortTask))).toMatchObject({ id: 3, type: 0, state: 6, error_code: legacyCode, error_message: "refused for a reason" });
  });

  it("answers an exhausted node with state 6, error 119 and a retry delay", async () => {
    const { handler } = setup({
      submit: () => {
        throw new DrceError("exhausted", "the queue is full (10000 tasks)", { retryAfterMs: 1500 });
      },
    });
    const reply = await handler.handle(JSON.stringify(legacyRequest(0, 3, sortTask)));
    expect(reply.retryAfterMs).toBe(1500);
    expect(JSON.parse(reply.body)).toMatchObject([{ state: 6, error_code: 119, error_message: "the queue is full (10000 tasks)" }]);
  });

  it("answers an unexpected exception with error 100 and a generic message, and logs it", async () => {
    const { send, logged } = setup({
      check: () => {
        throw new Error("ENOENT: no such file or directory, open '/var/lib/drce/tasks/5/status.json'");
      },
    });
    const item = await send(legacyRequest(1, 5, { type: 1 }));
    expect(item).toMatchObject({ error_code: 100, state: 6, error_message: "internal error of the node" });
    expect(JSON.stringify(item)).not.toContain("/var/lib");
    expect(logged).toHaveLength(1);
  });

  it("hides the message of an internal DrceError", async () => {
    const { send } = setup({
      check: () => {
        throw new DrceError("internal", "assertion failed at /src/core/x.ts:10");
      },
    });
    expect(await send(legacyRequest(1, 5, { type: 1 }))).toMatchObject({ error_code: 100, error_message: "internal error of the node" });
  });

  it("answers a malformed message with state 6 and the decoder's code, without calling the core", async () => {
    const { core, send } = setup();
    expect(await send("{not json")).toMatchObject({ error_code: 1, state: 6, id: 0 });
    expect(await send({ type: 0, id: 9001, data: "!!!not-base64!!!" })).toMatchObject({ error_code: 12, state: 6, id: 9001 });
    expect(await send({ type: 0, id: 9002, data: "WzEsMg==" })).toMatchObject({ error_code: 13, id: 9002 });
    expect(await send({ type: 77, id: 9003, data: "e30=" })).toMatchObject({ error_code: 105, id: 9003, type: 77 });
    expect(core.calls).toEqual([]);
  });

  it("answers in the cover the request came in", async () => {
    const { handler } = setup();
    const raw = await handler.handle(JSON.stringify(cover(legacyRequest(1, 567, { type: 1 }), false, 999)));
    expect(JSON.parse(raw.body)).toMatchObject({ type: 2, ttl: 999 });
    expect(uncover(raw.body)).toMatchObject([{ id: 567, state: 0 }]);
    const b64 = await handler.handle(JSON.stringify(cover(legacyRequest(1, 567, { type: 1 }), true)));
    expect(uncover(b64.body)).toMatchObject([{ id: 567 }]);
    const bad = await handler.handle(JSON.stringify({ type: 2, ttl: 5, data: "@@" }));
    expect(uncover(bad.body)).toMatchObject([{ error_code: 12 }]);
  });

  it("builds transport error replies", () => {
    const { handler } = setup();
    const reply = handler.errorReply(ErrorCode.BadInput, "too large");
    expect(JSON.parse(reply.body)).toMatchObject([{ error_code: 103, error_message: "too large", state: 6, node: "test-node" }]);
  });

  it("never rejects, whatever the body and whatever the core throws", async () => {
    const throwing = (): never => {
      throw Object.assign(new Error("boom"), { kind: "weird" });
    };
    const { handler } = setup({ submit: throwing, check: throwing, terminate: throwing, fetch: throwing, remove: throwing });
    const body = fc.oneof(
      fc.string(),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.record({ type: fc.integer({ min: 0, max: 4 }), id: fc.nat(), data: fc.constantFrom("e30=", "eyJ0eXBlIjoxfQ==", "eyJjb21tYW5kIjoieCJ9") }).map((v) => JSON.stringify(v)),
    );
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const reply = await handler.handle(b);
        expect(reply.status).toBe(200);
        expect(Array.isArray(JSON.parse(reply.body))).toBe(true);
      }),
      { seed: 42, numRuns: 300 },
    );
  });
});
