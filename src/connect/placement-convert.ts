import { create } from "@bufbuild/protobuf";
import {
  NodeCountSchema,
  NodeResultSchema,
  NodeRunStatus as ProtoNodeRunStatus,
  PlacementMode as ProtoPlacementMode,
  PlacementSchema,
  type NodeCount as ProtoNodeCount,
  type NodeResult as ProtoNodeResult,
  type Placement as ProtoPlacement,
  type TaskResult,
} from "../../gen/drce/v1/task_pb.js";
import { unsupportedMode } from "../cluster/placement.js";
import { DrceError, ErrorCode } from "../domain/errors.js";
import { usageFigures, type NodeCount, type NodeResult, type NodeRunStatus, type Placement, type PlacementMode, type UsageFigure } from "../domain/placement.js";
import type { TaskView } from "../domain/view.js";

/** The proto value of each node run status. */
const nodeRunStatusToProto: Readonly<Record<NodeRunStatus, ProtoNodeRunStatus>> = {
  running: ProtoNodeRunStatus.RUNNING,
  finished: ProtoNodeRunStatus.FINISHED,
  failed: ProtoNodeRunStatus.FAILED,
  "timed-out": ProtoNodeRunStatus.TIMED_OUT,
  unreachable: ProtoNodeRunStatus.UNREACHABLE,
  "not-started": ProtoNodeRunStatus.NOT_STARTED,
};

/** The proto value of each placement mode. */
const placementModeToProto: Readonly<Record<PlacementMode, ProtoPlacementMode>> = {
  balanced: ProtoPlacementMode.BALANCED,
  "round-robin": ProtoPlacementMode.ROUND_ROBIN,
  random: ProtoPlacementMode.RANDOM,
  all: ProtoPlacementMode.ALL,
};

/** Converts one node's part of a fanned-out task; `result` converts the node's view with that node's identity. */
export function nodeResultToProto(item: NodeResult, result: (view: TaskView) => TaskResult): ProtoNodeResult {
  return create(NodeResultSchema, {
    node: item.node,
    status: nodeRunStatusToProto[item.status],
    ...(item.view === undefined ? {} : { result: result(item.view) }),
    errorCode: item.errorCode,
    errorMessage: item.errorMessage,
  });
}

/**
 * The domain status of a proto node run status. Unspecified (never sent) or a value this build
 * does not know reads as "failed": an item that says nothing about its node must not pass for a
 * finished one.
 */
export function nodeRunStatusFromProto(status: ProtoNodeRunStatus): NodeRunStatus {
  for (const [name, value] of Object.entries(nodeRunStatusToProto)) if (value === status) return name as NodeRunStatus;
  return "failed";
}

/**
 * The domain placement of a request's `placement`, or undefined when the request has none. Each
 * field the request leaves at its zero value is left out (the manager's defaults apply). A mode
 * number this build does not know is carried through as a mode the placer refuses with 5001
 * ("node mode not supported: placement mode 9"), so that a manager answers it as the protocol
 * says; a data node ignores placement. Malformed figures or counts are refused here (103).
 */
export function placementFromProto(placement: ProtoPlacement | undefined): Placement | undefined {
  if (placement === undefined) return undefined;
  const mode = placementModeFromProto(placement.mode);
  const nodes = [...placement.nodes];
  nodes.forEach((name, index) => {
    if (name === "") throw new DrceError("invalid", `placement.nodes[${index}]: a node name is not empty`);
  });
  for (const key of Object.keys(placement.labels)) if (key === "") throw new DrceError("invalid", "placement.labels: a label key is not empty");
  const weights = figures(placement.weights, "placement.weights", "a weight");
  const limits = figures(placement.limits, "placement.limits", "a bound");
  const maxConcurrency = nodeCountFromProto(placement.maxConcurrency, "placement.max_concurrency");
  const maxErrors = nodeCountFromProto(placement.maxErrors, "placement.max_errors");
  const gatherTimeoutMs = placement.gatherTimeoutMs > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(placement.gatherTimeoutMs);
  return {
    ...(mode === undefined ? {} : { mode }),
    ...(nodes.length === 0 ? {} : { nodes }),
    ...(Object.keys(placement.labels).length === 0 ? {} : { labels: { ...placement.labels } }),
    ...(Object.keys(weights).length === 0 ? {} : { weights }),
    ...(Object.keys(limits).length === 0 ? {} : { limits }),
    ...(maxConcurrency === undefined ? {} : { maxConcurrency }),
    ...(maxErrors === undefined ? {} : { maxErrors }),
    ...(gatherTimeoutMs === 0 ? {} : { gatherTimeoutMs }),
  };
}

/** The proto form of a domain placement, as a caller (or a manager forwarding it) sends it. */
export function placementToProto(placement: Placement): ProtoPlacement {
  return create(PlacementSchema, {
    mode: placement.mode === undefined ? ProtoPlacementMode.UNSPECIFIED : placementModeNumber(placement.mode),
    nodes: [...(placement.nodes ?? [])],
    labels: { ...placement.labels },
    weights: { ...placement.weights },
    limits: { ...placement.limits },
    ...(placement.maxConcurrency === undefined ? {} : { maxConcurrency: nodeCountToProto(placement.maxConcurrency) }),
    ...(placement.maxErrors === undefined ? {} : { maxErrors: nodeCountToProto(placement.maxErrors) }),
    gatherTimeoutMs: BigInt(placement.gatherTimeoutMs ?? 0),
  });
}

/** The proto form of a node count. */
export function nodeCountToProto(count: NodeCount): ProtoNodeCount {
  return create(NodeCountSchema, { value: { case: count.kind, value: count.value } });
}

/** The domain mode of a proto mode: unspecified is undefined (the manager's --mode), an unknown number a mode the placer refuses. */
function placementModeFromProto(mode: ProtoPlacementMode): PlacementMode | undefined {
  if (mode === ProtoPlacementMode.UNSPECIFIED) return undefined;
  for (const [name, value] of Object.entries(placementModeToProto)) if (value === mode) return name as PlacementMode;
  return unsupportedMode(`placement mode ${String(mode)}`);
}

function placementModeNumber(mode: PlacementMode): ProtoPlacementMode {
  const number = placementModeToProto[mode];
  // A mode the placer does not know has no number; a manager never forwards one (it refuses it first).
  if (number === undefined) throw new DrceError("invalid", `node mode not supported: ${mode}`, { legacyCode: ErrorCode.NodeModeNotSupported });
  return number;
}

function figures(values: Readonly<Record<string, number>>, field: string, what: string): Partial<Record<UsageFigure, number>> {
  const out: Partial<Record<UsageFigure, number>> = {};
  for (const [key, value] of Object.entries(values)) {
    if (!(usageFigures as readonly string[]).includes(key)) {
      throw new DrceError("invalid", `${field}[${key}]: not a usage figure (expected one of ${usageFigures.join(", ")})`);
    }
    if (!Number.isFinite(value) || value < 0) throw new DrceError("invalid", `${field}[${key}]: ${what} is a number zero or greater, not ${String(value)}`);
    out[key as UsageFigure] = value;
  }
  return out;
}

function nodeCountFromProto(count: ProtoNodeCount | undefined, field: string): NodeCount | undefined {
  switch (count?.value.case) {
    case undefined:
      return undefined;
    case "count":
      if (count.value.value < 1) throw new DrceError("invalid", `${field}.count: a number of nodes is at least 1, not ${count.value.value}`);
      return { kind: "count", value: count.value.value };
    case "percent":
      if (count.value.value < 1 || count.value.value > 100) throw new DrceError("invalid", `${field}.percent: a percentage is 1 to 100, not ${count.value.value}`);
      return { kind: "percent", value: count.value.value };
  }
}
