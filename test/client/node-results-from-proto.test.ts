import { describe, expect, it } from "vitest";
import { identityFromProto, nodeResultFromProto, nodeViewFromProto, viewFromProto } from "../../src/client/from-proto.js";
import { specToProto } from "../../src/client/spec-to-proto.js";
import { specFromProto, viewToProto } from "../../src/connect/convert.js";
import { ErrorCode } from "../../src/domain/errors.js";
import { TaskState } from "../../src/domain/states.js";
import { taskSpec, taskStatus } from "../../src/domain/task.js";
import type { TaskView } from "../../src/domain/view.js";

const manager = { host: "manager.example", port: 8470, node: "m1" };

function view(id: string, fields: Partial<TaskView> = {}): TaskView {
  return {
    status: taskStatus({ id, state: TaskState.Finished, exitStatus: 0 }),
    timeMs: 5,
    stdout: new TextEncoder().encode(`${id} out`),
    stderr: new Uint8Array(0),
    stdoutMore: false,
    stderrMore: false,
    files: [],
    fields: {},
    subtasks: [],
    ...fields,
  };
}

describe("reading a node's reply", () => {
  it("keeps the node's host, port and name, so the manager's answer names that node", () => {
    const node = { host: "10.0.0.3", port: 9003, node: "n3" };
    const reply = viewToProto(view("t1", { subtasks: [view("t1-sub")] }), node);
    const read = nodeViewFromProto(reply);
    expect(read.origin).toEqual(node);
    // The manager answers with its own identity, and the result still names the node.
    const answered = viewToProto({ ...read, placedOn: "n3" }, manager);
    expect(identityFromProto(answered)).toEqual(node);
    expect(identityFromProto(answered.subtasks[0]!)).toEqual(node);
    expect(answered.placedOn).toBe("n3");
    expect(viewToProto(read, manager)).toEqual(reply);
  });

  it("reads a fanned-out result with one item per node, each view keeping its node's identity", () => {
    const fanned: TaskView = view("t2", {
      nodes: [
        { node: "n1", status: "finished", view: view("t2", { origin: { host: "10.0.0.1", port: 9001, node: "n1" } }), errorCode: 0, errorMessage: "" },
        { node: "n2", status: "unreachable", errorCode: ErrorCode.InternalFo, errorMessage: "node n2 is unreachable" },
        { node: "n3", status: "not-started", errorCode: 0, errorMessage: "not started: 1 nodes failed (max errors 1)" },
      ],
    });
    const back = viewFromProto(viewToProto(fanned, manager));
    expect(back.nodes).toEqual(fanned.nodes);
    expect(back.placedOn).toBeUndefined();
    expect(back.nodes![0]!.view!.origin).toEqual({ host: "10.0.0.1", port: 9001, node: "n1" });
  });

  it("reads a one-node placement's node name", () => {
    expect(viewFromProto(viewToProto(view("t3", { placedOn: "n5" }), manager)).placedOn).toBe("n5");
  });

  it("reads an item without a result as an item without a view", () => {
    const item = viewToProto(view("t4", { nodes: [{ node: "n9", status: "timed-out", errorCode: ErrorCode.InternalFo, errorMessage: "node n9 did not answer within 3000 ms" }] }), manager).nodes[0]!;
    expect(nodeResultFromProto(item)).toEqual({ node: "n9", status: "timed-out", errorCode: ErrorCode.InternalFo, errorMessage: "node n9 did not answer within 3000 ms" });
  });
});

describe("sending a placement", () => {
  it("writes the root's placement, which the manager reads back unchanged", () => {
    const spec = taskSpec({
      id: "t5",
      command: "uname -a",
      placement: { mode: "all", labels: { env: "prod" }, maxConcurrency: { kind: "count", value: 2 }, maxErrors: { kind: "percent", value: 10 }, gatherTimeoutMs: 1500 },
      subtasks: [taskSpec({ id: "t5-a", command: "true" })],
    });
    const proto = specToProto(spec);
    expect(proto.subtasks[0]!.placement).toBeUndefined();
    expect(specFromProto(proto)).toEqual(spec);
  });

  it("writes no placement for a spec without one", () => {
    expect(specToProto(taskSpec({ command: "true" })).placement).toBeUndefined();
  });
});
