import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { NodeRunStatus as ProtoNodeRunStatus, PlacementMode as ProtoPlacementMode, PlacementSchema, TaskSpecSchema } from "../../gen/drce/v1/task_pb.js";
import { SubmitTaskRequestSchema } from "../../gen/drce/v1/task_service_pb.js";
import { createPlacer, unsupportedMode } from "../../src/cluster/placement.js";
import { specFromProto, viewToProto } from "../../src/connect/convert.js";
import { toConnectError } from "../../src/connect/errors.js";
import { nodeRunStatusFromProto, placementFromProto, placementToProto } from "../../src/connect/placement-convert.js";
import { checkEnums } from "../../src/connect/request-enums.js";
import { DrceError, ErrorCode } from "../../src/domain/errors.js";
import type { NodeRunStatus, Placement } from "../../src/domain/placement.js";
import { TaskState } from "../../src/domain/states.js";
import { taskStatus } from "../../src/domain/task.js";
import type { TaskView } from "../../src/domain/view.js";

const manager = { host: "manager.example", port: 8470, node: "m1" };

function view(id: string, fields: Partial<TaskView> = {}): TaskView {
  return { status: taskStatus({ id, state: TaskState.Finished }), timeMs: 5, subtasks: [], ...fields };
}

function refusal(run: () => unknown): DrceError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(DrceError);
    return error as DrceError;
  }
  throw new Error("the conversion did not refuse");
}

describe("placement, proto to domain and back", () => {
  it("reads every field of a placement and writes the same placement back", () => {
    const placement: Placement = {
      mode: "all",
      nodes: ["n2", "n1"],
      labels: { env: "prod", os: "linux" },
      weights: { loadavg: 1, cpu: 0.5 },
      limits: { vram: 80, disk: 95.5 },
      maxConcurrency: { kind: "percent", value: 25 },
      maxErrors: { kind: "count", value: 2 },
      gatherTimeoutMs: 30_000,
    };
    const proto = placementToProto(placement);
    expect(proto.mode).toBe(ProtoPlacementMode.ALL);
    expect(proto.maxConcurrency?.value).toEqual({ case: "percent", value: 25 });
    expect(proto.gatherTimeoutMs).toBe(30_000n);
    expect(placementFromProto(proto)).toEqual(placement);
  });

  it("maps each mode to its proto value and back, and unspecified to the manager's default", () => {
    const modes = { balanced: ProtoPlacementMode.BALANCED, "round-robin": ProtoPlacementMode.ROUND_ROBIN, random: ProtoPlacementMode.RANDOM, all: ProtoPlacementMode.ALL } as const;
    for (const [mode, number] of Object.entries(modes)) {
      expect(placementToProto({ mode: mode as Placement["mode"] & string }).mode).toBe(number);
      expect(placementFromProto(create(PlacementSchema, { mode: number }))).toEqual({ mode });
    }
    expect(placementFromProto(create(PlacementSchema, {}))).toEqual({});
    expect(placementToProto({}).mode).toBe(ProtoPlacementMode.UNSPECIFIED);
    expect(placementFromProto(undefined)).toBeUndefined();
  });

  it("carries an unknown mode number through to the placer, which refuses it with 5001 and InvalidArgument", () => {
    const placement = placementFromProto(create(PlacementSchema, { mode: 9 as ProtoPlacementMode }));
    const error = refusal(() => createPlacer({ mode: "balanced", weights: {} }).place(placement, [{ name: "a", labels: {}, state: "up", usage: { cpu: 0, iowait: 0, vram: 0, rram: 0, disk: 0, processes: 0, threads: 0, loadavg: 0 }, freeSlots: 1 }]));
    expect(error.legacyCode).toBe(ErrorCode.NodeModeNotSupported);
    expect(error.message).toMatch(/^node mode not supported: placement mode 9 /);
    const connect = toConnectError(error);
    expect(connect.code).toBe(Code.InvalidArgument);
    expect(connect.metadata.get("drce-error-code")).toBe("5001");
  });

  it("refuses to write a mode it has no number for, with 5001", () => {
    const error = refusal(() => placementToProto({ mode: unsupportedMode("legacy route role 3") }));
    expect(error.legacyCode).toBe(ErrorCode.NodeModeNotSupported);
    expect(error.message).toBe("node mode not supported: legacy route role 3");
  });

  it("lets an unknown placement mode past the enum check, which still refuses every other unknown enum", () => {
    const request = create(SubmitTaskRequestSchema, { task: create(TaskSpecSchema, { command: "true", placement: create(PlacementSchema, { mode: 9 as ProtoPlacementMode }) }) });
    expect(() => checkEnums(SubmitTaskRequestSchema, request as unknown as Record<string, unknown>, "")).not.toThrow();
    const bad = create(SubmitTaskRequestSchema, { task: create(TaskSpecSchema, { command: "true", mode: 99 as never, placement: create(PlacementSchema, { mode: 9 as ProtoPlacementMode }) }) });
    expect(() => checkEnums(SubmitTaskRequestSchema, bad as unknown as Record<string, unknown>, "")).toThrow("task.mode: 99 is not a TaskMode value");
  });

  it("gives the placer's refusals their Connect codes with the legacy code in the metadata", () => {
    const placer = createPlacer({ mode: "balanced", weights: {} });
    const busy = { name: "a", labels: {}, state: "up" as const, usage: { cpu: 99, iowait: 0, vram: 0, rram: 0, disk: 0, processes: 0, threads: 0, loadavg: 0 }, freeSlots: 1 };
    const cases = [
      [() => placer.place({ labels: { env: "none" } }, [busy]), Code.Unavailable, "5000"],
      [() => placer.place({ limits: { cpu: 50 } }, [busy]), Code.ResourceExhausted, "5002"],
    ] as const;
    for (const [run, code, legacy] of cases) {
      const connect = toConnectError(refusal(run));
      expect(connect.code).toBe(code);
      expect(connect.metadata.get("drce-error-code")).toBe(legacy);
    }
  });

  it.each([
    [{ nodes: ["a", ""] }, "placement.nodes[1]: a node name is not empty"],
    [{ labels: { "": "x" } }, "placement.labels: a label key is not empty"],
    [{ weights: { gpu: 1 } }, "placement.weights[gpu]: not a usage figure (expected one of cpu, iowait, vram, rram, disk, processes, threads, loadavg)"],
    [{ weights: { cpu: -1 } }, "placement.weights[cpu]: a weight is a number zero or greater, not -1"],
    [{ limits: { cpu: Number.NaN } }, "placement.limits[cpu]: a bound is a number zero or greater, not NaN"],
    [{ maxConcurrency: { value: { case: "count" as const, value: 0 } } }, "placement.max_concurrency.count: a number of nodes is at least 1, not 0"],
    [{ maxErrors: { value: { case: "percent" as const, value: 101 } } }, "placement.max_errors.percent: a percentage is 1 to 100, not 101"],
    [{ maxErrors: { value: { case: "percent" as const, value: 0 } } }, "placement.max_errors.percent: a percentage is 1 to 100, not 0"],
  ])("refuses the malformed placement %j with 103: %s", (fields, message) => {
    const error = refusal(() => specFromProto(create(TaskSpecSchema, { command: "true", placement: create(PlacementSchema, fields) })));
    expect(error.message).toBe(message);
    expect(error.kind).toBe("invalid");
    expect(error.legacyCode).toBe(ErrorCode.BadInput);
    expect(toConnectError(error).code).toBe(Code.InvalidArgument);
  });

  it("reads the root's placement into the spec and ignores a subtask's", () => {
    const spec = specFromProto(
      create(TaskSpecSchema, {
        command: "true",
        placement: create(PlacementSchema, { mode: ProtoPlacementMode.RANDOM, labels: { env: "prod" } }),
        subtasks: [create(TaskSpecSchema, { command: "false", placement: create(PlacementSchema, { mode: ProtoPlacementMode.ALL }) })],
      }),
    );
    expect(spec.placement).toEqual({ mode: "random", labels: { env: "prod" } });
    expect(spec.subtasks[0]!.placement).toBeUndefined();
    expect("placement" in specFromProto(create(TaskSpecSchema, { command: "true" }))).toBe(false);
  });
});

describe("node results, domain to proto", () => {
  it("gives each node's item that node's host, port and name, and the whole the manager's", () => {
    const origin = { host: "10.0.0.2", port: 9001, node: "n2" };
    const fanned = view("t1", {
      nodes: [
        { node: "n1", status: "unreachable", errorCode: ErrorCode.InternalFo, errorMessage: "node n1 is unreachable" },
        { node: "n2", status: "finished", view: view("t1", { origin, subtasks: [view("t1-sub")] }), errorCode: 0, errorMessage: "" },
        { node: "n3", status: "failed", view: view("t1"), errorCode: 0, errorMessage: "" },
      ],
    });
    const result = viewToProto(fanned, manager);
    expect([result.host, result.port, result.node]).toEqual([manager.host, manager.port, manager.node]);
    expect(result.nodes.map((item) => [item.node, item.status, item.errorCode, item.errorMessage])).toEqual([
      ["n1", ProtoNodeRunStatus.UNREACHABLE, ErrorCode.InternalFo, "node n1 is unreachable"],
      ["n2", ProtoNodeRunStatus.FINISHED, 0, ""],
      ["n3", ProtoNodeRunStatus.FAILED, 0, ""],
    ]);
    expect(result.nodes[0]!.result).toBeUndefined();
    const n2 = result.nodes[1]!.result!;
    expect([n2.host, n2.port, n2.node]).toEqual(["10.0.0.2", 9001, "n2"]);
    expect([n2.subtasks[0]!.host, n2.subtasks[0]!.node]).toEqual(["10.0.0.2", "n2"]);
    // An item the manager built without the node's reply names the node, never the manager's address.
    const n3 = result.nodes[2]!.result!;
    expect([n3.host, n3.port, n3.node]).toEqual(["", 0, "n3"]);
  });

  it("names the node a one-node task was placed on, with that node's identity", () => {
    const result = viewToProto(view("t2", { placedOn: "n4", origin: { host: "10.0.0.4", port: 9004, node: "n4" } }), manager);
    expect([result.placedOn, result.host, result.port, result.node]).toEqual(["n4", "10.0.0.4", 9004, "n4"]);
    expect(viewToProto(view("t3"), manager).placedOn).toBe("");
    expect(viewToProto(view("t3"), manager).nodes).toEqual([]);
  });

  it("reads every node run status back, and an unknown or unspecified one as failed", () => {
    const statuses: NodeRunStatus[] = ["running", "finished", "failed", "timed-out", "unreachable", "not-started"];
    for (const status of statuses) {
      const proto = viewToProto(view("t", { nodes: [{ node: "a", status, errorCode: 0, errorMessage: "" }] }), manager).nodes[0]!.status;
      expect(nodeRunStatusFromProto(proto)).toBe(status);
    }
    expect(nodeRunStatusFromProto(ProtoNodeRunStatus.UNSPECIFIED)).toBe("failed");
    expect(nodeRunStatusFromProto(42 as ProtoNodeRunStatus)).toBe("failed");
  });
});
