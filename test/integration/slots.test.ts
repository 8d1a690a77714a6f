import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * Execution slots and task trees on a real node with a single slot.
 */

let node: TestNode;
beforeAll(async () => {
  node = await startNode({ maxConcurrent: 1 });
});
afterAll(async () => {
  await node?.stop();
});

describe("a node with one slot", () => {
  // Regression: a parent kept its slot while it waited for its sync subtasks, so with one slot
  // the subtask waited forever for the slot its own parent held.
  it("runs a parent's sync subtasks: the parent gives its slot up once its command has ended", async () => {
    const reply = await node.client.submitTask({
      task: create(TaskSpecSchema, {
        id: "slot-parent",
        command: "echo parent",
        mode: TaskMode.SYNC,
        subtasks: [
          { id: "slot-sub-1", command: "echo one", mode: TaskMode.SYNC, subtasks: [{ id: "slot-sub-1-1", command: "echo deep", mode: TaskMode.SYNC }] },
          { id: "slot-sub-2", command: "echo two", mode: TaskMode.SYNC },
        ],
      }),
    });
    const result = reply.result!;
    expect(result.state).toBe(TaskState.FINISHED);
    expect(result.subtasks.map((s) => s.state)).toEqual([TaskState.FINISHED, TaskState.FINISHED]);
    expect(result.subtasks[0]!.subtasks[0]!.state).toBe(TaskState.FINISHED);
    expect(Buffer.from(result.subtasks[1]!.stdout).toString()).toBe("two\n");
    expect(node.app.core.slots.active).toBe(0);
  });
});
