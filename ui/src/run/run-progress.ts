import type { NodeResult, OutputChunk, OutputGap, TaskResult } from "../../../gen/drce/v1/task_pb.js";
import { progressOf, type NodeProgress } from "./node-progress.js";
import { createOutputSink, type OutputSink } from "./output-sink.js";

/** What the console knows of a run so far, as its events arrived. */
export interface RunProgress {
  /** The task's id, once the node or manager accepted it. */
  readonly taskId?: string;
  /** The node a manager placed a single task on. */
  readonly placedOn?: string;
  /** The task runs on several nodes: its output and status are per node. */
  readonly fanOut: boolean;
  /** Each node's part, in the order the nodes became known (a fan-out). */
  readonly nodes: readonly NodeProgress[];
  /** The task's result as a whole, once it ended. */
  readonly result?: TaskResult;
  /** Why the call failed, when it did. */
  readonly error?: string;
}

/** One event of a run stream (`RunTask` or `StreamTaskOutput`), with the node it names through a manager. */
export type RunEvent =
  | { readonly case: "accepted"; readonly value: TaskResult }
  | { readonly case: "output"; readonly value: OutputChunk }
  | { readonly case: "gap"; readonly value: OutputGap }
  | { readonly case: "nodeResult"; readonly value: NodeResult }
  | { readonly case: "result"; readonly value: TaskResult };

/**
 * A run followed from its stream: its progress for the view to render, and one output sink
 * per node (or one for a single task) that its terminals attach to. Each event goes to
 * `apply`, which returns the new progress (the old one is never changed).
 */
export interface RunTracker {
  /** The sink of a node's output, made when the node is first named; `""` is a single task's. */
  sink(node: string): OutputSink;
  /** The progress after one more event. */
  apply(progress: RunProgress, event: RunEvent, node: string | undefined): RunProgress;
}

/** The progress of a run that has not been accepted yet. */
export function startingProgress(fanOut: boolean): RunProgress {
  return { fanOut, nodes: [] };
}

/** Makes a {@link RunTracker} with no sink yet. */
export function createRunTracker(): RunTracker {
  const sinks = new Map<string, OutputSink>();
  const sink = (node: string): OutputSink => {
    let found = sinks.get(node);
    if (found === undefined) {
      found = createOutputSink();
      sinks.set(node, found);
    }
    return found;
  };
  const withNode = (progress: RunProgress, item: NodeProgress): RunProgress => {
    const index = progress.nodes.findIndex((known) => known.node === item.node);
    // A later "running" never undoes an ended part (a stream resumed replays the start).
    if (index >= 0 && item.status === "running" && progress.nodes[index]?.status !== "running") return progress;
    const nodes = index < 0 ? [...progress.nodes, item] : progress.nodes.map((known, at) => (at === index ? item : known));
    return { ...progress, fanOut: true, nodes };
  };
  return {
    sink,
    apply(progress, event, node) {
      switch (event.case) {
        case "accepted": {
          let next: RunProgress = { ...progress, taskId: event.value.id, ...(event.value.placedOn === "" ? {} : { placedOn: event.value.placedOn }) };
          for (const item of event.value.nodes) next = withNode(next, progressOf(item));
          return next;
        }
        case "output": {
          const name = progress.fanOut ? (node ?? "") : "";
          sink(name).write(event.value.data);
          return progress.fanOut && name !== "" && !progress.nodes.some((known) => known.node === name) ? withNode(progress, { node: name, status: "running" }) : progress;
        }
        case "gap":
          sink(progress.fanOut ? (node ?? "") : "").write(`\r\n[${event.value.bytes} bytes of output were not kept here]\r\n`);
          return progress;
        case "nodeResult":
          return withNode(progress, progressOf(event.value));
        case "result": {
          let next: RunProgress = { ...progress, result: event.value };
          for (const item of event.value.nodes) next = withNode(next, progressOf(item));
          return next;
        }
        default:
          return progress;
      }
    },
  };
}
