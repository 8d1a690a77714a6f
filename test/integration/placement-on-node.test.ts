import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PlacementMode, PlacementSchema, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * A data node and the placement a caller may send it (a manager reads it, a node does not):
 * any well-formed placement, even one naming a mode this build does not know, runs the task on
 * the node itself; a malformed one is refused as any malformed field is.
 */

let node: TestNode;

beforeAll(async () => {
  node = await startNode();
});
afterAll(async () => {
  await node?.stop();
});

async function errorOf(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the call did not fail");
}

describe("a data node given a placement", () => {
  it("runs the task itself, whatever the placement names, an unknown mode number included", async () => {
    for (const [id, mode] of [
      ["placed-all", PlacementMode.ALL],
      ["placed-unknown-mode", 9 as PlacementMode],
    ] as const) {
      const placement = create(PlacementSchema, { mode, nodes: ["elsewhere"], labels: { env: "prod" }, limits: { cpu: 1 } });
      const reply = await node.client.submitTask({ task: create(TaskSpecSchema, { id, command: "echo here", placement }) });
      expect(reply.result).toMatchObject({ id, state: TaskState.FINISHED, exitStatus: 0, nodes: [], placedOn: "" });
      expect(new TextDecoder().decode(reply.result!.stdout)).toBe("here\n");
    }
  });

  it("refuses a malformed placement with InvalidArgument and legacy 103, storing nothing", async () => {
    const placement = create(PlacementSchema, { weights: { gpu: 1 } });
    const error = await errorOf(node.client.submitTask({ task: create(TaskSpecSchema, { id: "placed-badly", command: "echo never", placement }) }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe("placement.weights[gpu]: not a usage figure (expected one of cpu, iowait, vram, rram, disk, processes, threads, loadavg)");
    expect(error.metadata.get("drce-error-code")).toBe("103");
    expect((await errorOf(node.client.getTask({ task: "placed-badly" }))).code).toBe(Code.NotFound);
  });
});
