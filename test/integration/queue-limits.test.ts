import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * The concurrency cap and the bounded queue through a real node (--max-concurrent 2,
 * --max-queue 3): two tasks run, three wait in state QUEUED (legacy 8), and past that a
 * submission is refused on every API: Connect ResourceExhausted with retry-after metadata,
 * legacy HTTP and ZeroMQ state 6 with error 119 (and a Retry-After header over HTTP).
 */

let node: TestNode;

beforeAll(async () => {
  node = await startNode({ maxConcurrent: 2, maxQueue: 3, zmqListen: "127.0.0.1:0" });
});

afterAll(async () => {
  await node?.stop();
});

const stateOf = async (task: string): Promise<TaskState> => (await node.client.getTask({ task })).result!.state;
const legacySet = (id: number, command: string): string =>
  JSON.stringify({ type: 0, id, data: Buffer.from(JSON.stringify({ session: { tmode: 2 }, command })).toString("base64") });

describe("max-concurrent 2, max-queue 3", () => {
  it("runs two, queues three (state 8), refuses the next everywhere, then runs the queued in turn", async () => {
    const gate = `${node.dataDir}/open-gate`;
    // The running tasks wait for a file, so the test decides when slots free up.
    const waiter = `until [ -e ${gate} ]; do sleep 0.05; done`;
    for (const id of ["run-1", "run-2"]) {
      await node.client.submitTask({ task: create(TaskSpecSchema, { id, command: waiter, mode: TaskMode.ASYNC }) });
    }
    await until(async () => [await stateOf("run-1"), await stateOf("run-2")], (s) => s.every((x) => x === TaskState.IN_PROGRESS), 15_000, "two running");

    for (const id of ["wait-1", "wait-2", "wait-3"]) {
      const r = (await node.client.submitTask({ task: create(TaskSpecSchema, { id, command: `echo ${id}`, mode: TaskMode.ASYNC }) })).result!;
      expect(r.state).toBe(TaskState.QUEUED);
      expect(r.legacyState).toBe(8);
    }
    await until(() => node.app.core.slots.queued, (n) => n === 3, 10_000, "three tasks waiting for a slot");

    // Connect: ResourceExhausted, retry-after, legacy code 119; the task does not exist.
    let refused: ConnectError | undefined;
    try {
      await node.client.submitTask({ task: create(TaskSpecSchema, { id: "over", command: "true", mode: TaskMode.ASYNC }) });
    } catch (error) {
      refused = ConnectError.from(error);
    }
    expect(refused?.code).toBe(Code.ResourceExhausted);
    expect(Number(refused?.metadata.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(refused?.metadata.get("drce-error-code")).toBe("119");
    await expect(node.client.getTask({ task: "over" })).rejects.toMatchObject({ code: Code.NotFound });

    // Legacy HTTP: state 6, error 119, Retry-After.
    const response = await fetch(`${node.url}/drce`, { method: "POST", body: legacySet(5001, "true") });
    expect(response.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    const [httpItem] = (await response.json()) as { id: number; state: number; error_code: number }[];
    expect(httpItem).toMatchObject({ id: 5001, state: 6, error_code: 119 });

    // Legacy ZeroMQ: the same item.
    const dealer = new Dealer({ routingId: "queue-client", linger: 0, receiveTimeout: 10_000 });
    dealer.connect(node.zmqEndpoint);
    try {
      await dealer.send(["q", legacySet(5002, "true")]);
      const [, body] = await dealer.receive();
      const [zmqItem] = JSON.parse(body!.toString()) as { id: number; state: number; error_code: number }[];
      expect(zmqItem).toMatchObject({ id: 5002, state: 6, error_code: 119 });
    } finally {
      dealer.close();
    }

    // Nothing refused took a place: still two running, three queued.
    expect(node.app.core.slots.active).toBe(2);
    expect(node.app.core.slots.queued).toBe(3);
    for (const id of ["wait-1", "wait-2", "wait-3"]) expect(await stateOf(id)).toBe(TaskState.QUEUED);

    // Free the slots: every queued task runs and finishes.
    await writeFile(gate, "");
    for (const id of ["run-1", "run-2", "wait-1", "wait-2", "wait-3"]) {
      await until(() => stateOf(id), (s) => s === TaskState.FINISHED, 15_000, `${id} finished`);
    }
    const third = (await node.client.fetchTask({ task: "wait-3" })).result!;
    expect(Buffer.from(third.stdout).toString()).toBe("wait-3\n");
    // And the node takes new work again.
    const again = (await node.client.submitTask({ task: create(TaskSpecSchema, { command: "echo again" }) })).result!;
    expect(again.state).toBe(TaskState.FINISHED);
  });
});
