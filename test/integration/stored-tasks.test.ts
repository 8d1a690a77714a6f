import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { mkdtemp, rm, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { SendTaskInputRequestSchema } from "../../gen/drce/v1/task_service_pb.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * A node keeps a stored task's status in memory and reads its request from disk when a call
 * needs it. These tests restart a real node on a data directory holding finished tasks and
 * check every call that reads a stored task's request: an idempotent resubmission (its digest),
 * a fetch of a task submitted with cleanup, and input sent to it (open stdin).
 */

type SpecInit = MessageInitShape<typeof TaskSpecSchema>;

const text = (bytes: Uint8Array | undefined): string => Buffer.from(bytes ?? new Uint8Array()).toString("utf8");

/** The ConnectError a call fails with (fails the test when it succeeds). */
async function errorOf(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the call succeeded but was expected to fail");
}

/** Posts a legacy sync submission (type 0) and returns its result item. */
async function legacySubmit(url: string, id: number, command: string): Promise<{ state: number; error_code: number; error_message: string; stdout?: string }> {
  const data = Buffer.from(JSON.stringify({ session: { tmode: 1 }, command })).toString("base64");
  const reply = await fetch(`${url}/drce`, { method: "POST", body: JSON.stringify({ type: 0, id, data }) });
  expect(reply.status).toBe(200);
  return ((await reply.json()) as { state: number; error_code: number; error_message: string; stdout?: string }[])[0]!;
}

const plain: SpecInit = { id: "7001", command: "echo hi" };
const cleaned: SpecInit = { id: "7002", command: "echo bye", cleanup: true };
const withStdin: SpecInit = { id: "7003", command: "true", openStdin: true };
const aliased: SpecInit = { id: "7004", alias: "nightly", command: "echo night" };
const legacyId = 7005;
const unreadable: SpecInit = { id: "7006", command: "echo gone" };

let dataDir: string;
let node: TestNode;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "drce-stored-"));
  const first = await startNode({ dataDir });
  try {
    for (const spec of [plain, withStdin, aliased, unreadable]) {
      const reply = await first.client.submitTask({ task: create(TaskSpecSchema, { ...spec, mode: TaskMode.SYNC }) });
      expect(reply.result?.state).toBe(TaskState.FINISHED);
    }
    // Async: a sync caller of a cleanup task gets its result and the task is gone at once.
    await first.client.submitTask({ task: create(TaskSpecSchema, { ...cleaned, mode: TaskMode.ASYNC }) });
    await until(() => first.client.getTask({ task: cleaned.id! }), (reply) => reply.result?.state === TaskState.FINISHED, 10_000, "the cleanup task to finish");
    expect((await legacySubmit(first.url, legacyId, "echo legacy")).state).toBe(0);
  } finally {
    await first.stop();
  }
  // The node under test knows these tasks only from the store.
  node = await startNode({ dataDir });
});

afterAll(async () => {
  await node?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe("a node restarted on stored tasks", { timeout: 60_000 }, () => {
  it("answers a resubmission of a stored task with the same request from the task, without running it again", async () => {
    const again = await node.client.submitTask({ task: create(TaskSpecSchema, { ...plain, mode: TaskMode.SYNC }) });
    expect(again.existing).toBe(true);
    expect(again.result?.state).toBe(TaskState.FINISHED);
    expect(text(again.result?.stdout)).toBe("hi\n");
  });

  it("refuses a different request under a stored task's id with AlreadyExists (legacy 104), and keeps the task", async () => {
    const error = await errorOf(node.client.submitTask({ task: create(TaskSpecSchema, { ...plain, command: "echo other" }) }));
    expect(error.code).toBe(Code.AlreadyExists);
    expect(error.metadata.get("drce-error-code")).toBe("104");
    expect(error.rawMessage).toBe(`task id ${plain.id} is already used by a different request`);
    expect(text((await node.client.fetchTask({ task: plain.id! })).result?.stdout)).toBe("hi\n");
  });

  it("answers a legacy resubmission of a stored task from the task, and refuses a different one with error 104", async () => {
    const same = await legacySubmit(node.url, legacyId, "echo legacy");
    expect(same.state).toBe(0);
    expect(same.error_code).toBe(0);
    const other = await legacySubmit(node.url, legacyId, "echo other");
    expect(other.error_code).toBe(104);
    expect(other.error_message).toBe(`task id ${legacyId} is already used by a different request`);
  });

  it("removes a stored task submitted with cleanup once it is fetched, and finds it no more (NotFound, legacy 0)", async () => {
    const fetched = await node.client.fetchTask({ task: cleaned.id! });
    expect(text(fetched.result?.stdout)).toBe("bye\n");
    const error = await errorOf(node.client.getTask({ task: cleaned.id! }));
    expect(error.code).toBe(Code.NotFound);
    expect(error.metadata.get("drce-error-code")).toBe("0");
  });

  it("keeps a stored task submitted without cleanup after a fetch", async () => {
    await node.client.fetchTask({ task: aliased.id! });
    expect((await node.client.getTask({ task: "nightly" })).result?.id).toBe(aliased.id);
  });

  it("refuses input to a stored task with FailedPrecondition (legacy 113): not running when it had open stdin, not open otherwise", async () => {
    async function* input(task: string) {
      yield create(SendTaskInputRequestSchema, { task, data: Buffer.from("x") });
    }
    const send = (task: string) => node.client.sendTaskInput(input(task));
    const ended = await errorOf(send(withStdin.id!));
    expect(ended.code).toBe(Code.FailedPrecondition);
    expect(ended.metadata.get("drce-error-code")).toBe("113");
    expect(ended.rawMessage).toBe(`task ${withStdin.id} is not running`);
    const closed = await errorOf(send(plain.id!));
    expect(closed.code).toBe(Code.FailedPrecondition);
    expect(closed.metadata.get("drce-error-code")).toBe("113");
    expect(closed.rawMessage).toBe(`task ${plain.id} was not submitted with open stdin`);
  });

  it("names a stored task by its alias and lists every stored task", async () => {
    expect((await node.client.getTask({ task: "nightly" })).result?.id).toBe(aliased.id);
    const listed = (await node.client.listTasks({})).tasks.map((task) => task.id);
    expect(listed).toEqual(expect.arrayContaining([plain.id, withStdin.id, aliased.id, String(legacyId)]));
  });

  it("reads a stored task's request from disk when a call needs it: without its file the task is still served, and its id refused to any request (AlreadyExists, legacy 104)", async () => {
    await unlink(join(dataDir, "tasks", unreadable.id!, "request.json"));
    const stored = await node.client.getTask({ task: unreadable.id! });
    expect(stored.result?.state).toBe(TaskState.FINISHED);
    expect(text((await node.client.fetchTask({ task: unreadable.id! })).result?.stdout)).toBe("gone\n");
    const error = await errorOf(node.client.submitTask({ task: create(TaskSpecSchema, { ...unreadable, mode: TaskMode.SYNC }) }));
    expect(error.code).toBe(Code.AlreadyExists);
    expect(error.metadata.get("drce-error-code")).toBe("104");
  });
});
