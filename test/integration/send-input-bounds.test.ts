import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { SendTaskInputRequestSchema, type SendTaskInputRequest } from "../../gen/drce/v1/task_service_pb.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * SendTaskInput is exempt from the request-body bound (its body is a task's stdin), so it is
 * bounded by its own rules: its first message must come within --request-timeout-ms, and a
 * stream still open once its task is final ends then, with a status that says so.
 */

const requestTimeoutMs = 1500;
let node: TestNode;
// Releases every input stream a test left open on purpose.
const release = new AbortController();

beforeAll(async () => {
  node = await startNode({ requestTimeoutMs, headersTimeoutMs: 1000 });
});
afterAll(async () => {
  release.abort();
  await node?.stop();
});

/** Yields the given messages, then holds the stream open (sending nothing) until the tests end. */
async function* holdOpen(...messages: SendTaskInputRequest[]): AsyncGenerator<SendTaskInputRequest> {
  yield* messages;
  await new Promise<void>((resolve) => release.signal.addEventListener("abort", () => resolve(), { once: true }));
}

/** The Connect error a call ends with (failing the test when it succeeds). */
async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the call succeeded");
}

describe("SendTaskInput bounds", { timeout: 60_000 }, () => {
  it("a call that never sends its first message is DeadlineExceeded (legacy 103) after --request-timeout-ms", async () => {
    const started = Date.now();
    const error = await failure(node.client.sendTaskInput(holdOpen()));
    expect(error.code).toBe(Code.DeadlineExceeded);
    expect(error.metadata.get("drce-error-code")).toBe("103");
    expect(error.rawMessage).toContain(`within ${requestTimeoutMs} ms`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(requestTimeoutMs - 50);
  });

  it("a call kept open after its task ended ends with FailedPrecondition (legacy 113); the input sent was written", async () => {
    const id = `input-ended-${Date.now()}`;
    // Reads three bytes of stdin and exits, leaving the caller's stream open behind it.
    await node.client.submitTask({ task: create(TaskSpecSchema, { id, command: "head -c 3", openStdin: true, mode: TaskMode.ASYNC }) });
    const error = await failure(node.client.sendTaskInput(holdOpen(create(SendTaskInputRequestSchema, { task: id, data: Buffer.from("abc") }))));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.metadata.get("drce-error-code")).toBe("113");
    expect(error.rawMessage).toBe(`task ${id} has ended: its stdin takes no more input`);
    const done = await until(() => node.client.fetchTask({ task: id }), (reply) => reply.result?.state === TaskState.FINISHED, 10_000, "the task to finish");
    expect(done.result?.exitStatus).toBe(0);
    expect(Buffer.from(done.result?.stdout ?? new Uint8Array()).toString()).toBe("abc");
  });

  it("a call kept open that names an unknown task ends with NotFound at once", async () => {
    const error = await failure(node.client.sendTaskInput(holdOpen(create(SendTaskInputRequestSchema, { task: "no-such-task" }))));
    expect(error.code).toBe(Code.NotFound);
  });

  it("a call whose first message names no task is InvalidArgument", async () => {
    const error = await failure(node.client.sendTaskInput(holdOpen(create(SendTaskInputRequestSchema, { data: Buffer.from("x") }))));
    expect(error.code).toBe(Code.InvalidArgument);
  });
});
