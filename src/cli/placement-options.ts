import { create } from "@bufbuild/protobuf";
import { NodeCountSchema, PlacementMode, PlacementSchema, type NodeCount as ProtoNodeCount, type Placement } from "../../gen/drce/v1/task_pb.js";
import { parseNodeCount, parseSelector } from "../cluster/placement.js";
import type { NodeCount } from "../domain/placement.js";
import { UsageError } from "./errors.js";
import type { OptionSpec } from "./options.js";

/** The flags that choose the data nodes of a task on a manager, shared by `run` and `submit`. */
export const placementOptions = {
  all: { type: "boolean" },
  nodes: { type: "string", multiple: true },
  target: { type: "string", multiple: true },
  mode: { type: "string" },
  "max-concurrency": { type: "string" },
  "max-errors": { type: "string" },
} as const satisfies OptionSpec;

/** The parsed values of {@link placementOptions}. */
export interface PlacementValues {
  all?: boolean | undefined;
  nodes?: string[] | undefined;
  target?: string[] | undefined;
  mode?: string | undefined;
  "max-concurrency"?: string | undefined;
  "max-errors"?: string | undefined;
}

/** The help lines of {@link placementOptions}, as `drce help run` and `drce help submit` show them. */
export const placementUsage = `Placement options (through a manager; a data node ignores them):
      --all                run on every node of the cluster (a fan-out)
      --nodes A,B          run on these nodes (repeatable; a fan-out)
      --target K=V[,K=V]   run on the nodes carrying every one of these labels
                           (repeatable; a fan-out)
      --mode MODE          balanced, round-robin, random or all (default: all with
                           --all, --nodes or --target, else the manager's --mode)
      --max-concurrency N|N%
                           at most N nodes (or N% of them) run the task at once
      --max-errors N|N%    once N nodes (or N%) failed, start it on no further node`;

/** The names `--mode` accepts, and the proto mode of each. */
const modes: Readonly<Record<string, PlacementMode>> = {
  balanced: PlacementMode.BALANCED,
  "round-robin": PlacementMode.ROUND_ROBIN,
  random: PlacementMode.RANDOM,
  all: PlacementMode.ALL,
};

/**
 * The Placement the flags name, or undefined when they name none (the manager's defaults
 * apply, and a data node runs the task as always). `--all`, `--nodes` and `--target` make a
 * fan-out (mode all) unless `--mode` says otherwise; the rate controls belong to a fan-out.
 */
export function placementFromOptions(values: PlacementValues): Placement | undefined {
  const nodes = (values.nodes ?? []).flatMap((list) => list.split(",")).map((name) => name.trim());
  if (nodes.some((name) => name === "")) throw new UsageError(`--nodes ${JSON.stringify((values.nodes ?? []).join(","))}: a node name is empty`);
  if (values.all === true && nodes.length > 0) throw new UsageError("--all and --nodes exclude each other: --all is every node");
  const labels: Record<string, string> = {};
  for (const text of values.target ?? []) Object.assign(labels, parseTargetOption(text));
  const selects = values.all === true || nodes.length > 0 || Object.keys(labels).length > 0;
  let mode = selects ? PlacementMode.ALL : PlacementMode.UNSPECIFIED;
  if (values.mode !== undefined) {
    const named = modes[values.mode];
    if (named === undefined) throw new UsageError(`--mode ${JSON.stringify(values.mode)}: one of ${Object.keys(modes).join(", ")}`);
    if (values.all === true && named !== PlacementMode.ALL) throw new UsageError(`--all runs on every node; it does not go with --mode ${values.mode}`);
    mode = named;
  }
  const maxConcurrency = count(values["max-concurrency"], "--max-concurrency");
  const maxErrors = count(values["max-errors"], "--max-errors");
  if ((maxConcurrency !== undefined || maxErrors !== undefined) && mode !== PlacementMode.ALL) {
    throw new UsageError(`--${maxConcurrency !== undefined ? "max-concurrency" : "max-errors"} belongs to a fan-out: add --all, --nodes or --target`);
  }
  if (mode === PlacementMode.UNSPECIFIED) return undefined;
  return create(PlacementSchema, {
    mode,
    nodes,
    labels,
    ...(maxConcurrency === undefined ? {} : { maxConcurrency }),
    ...(maxErrors === undefined ? {} : { maxErrors }),
  });
}

/** Whether a placement runs the task on every selected node. */
export function isFanOut(placement: Placement | undefined): boolean {
  return placement?.mode === PlacementMode.ALL;
}

/** Reads a `--target K=V[,K=V]` label selector, as a usage error when it is malformed. */
export function parseTargetOption(text: string): Record<string, string> {
  try {
    return parseSelector(text);
  } catch (error) {
    throw new UsageError(`--target ${JSON.stringify(text)}: ${(error as Error).message}`, { cause: error });
  }
}

function count(text: string | undefined, flag: string): ProtoNodeCount | undefined {
  if (text === undefined) return undefined;
  let parsed: NodeCount;
  try {
    parsed = parseNodeCount(text);
  } catch (error) {
    throw new UsageError(`${flag} ${JSON.stringify(text)}: ${(error as Error).message}`, { cause: error });
  }
  return create(NodeCountSchema, { value: parsed.kind === "count" ? { case: "count", value: parsed.value } : { case: "percent", value: parsed.value } });
}
