import type { TaskView } from "./view.js";

/**
 * How a manager chooses the data nodes of a task. The legacy route roles map onto these in
 * the legacy gateway (0 all, 1 round robin, 4 random, 5 by resource usage).
 */
export type PlacementMode = "balanced" | "round-robin" | "random" | "all";

/** The eight resource usage figures a node reports, in the order of its balancing string. */
export const usageFigures = ["cpu", "iowait", "vram", "rram", "disk", "processes", "threads", "loadavg"] as const;

/** One resource usage figure's name. */
export type UsageFigure = (typeof usageFigures)[number];

/** A number of nodes, or a percentage of the selected ones (rounded up, at least one). */
export type NodeCount = { readonly kind: "count"; readonly value: number } | { readonly kind: "percent"; readonly value: number };

/** Which data nodes a manager gives a task to. Every field is optional: unset takes the manager's defaults. */
export interface Placement {
  /** How to choose among the selected nodes; unset takes the manager's --mode. */
  readonly mode?: PlacementMode;
  /** Only these node names; empty means every node. */
  readonly nodes?: readonly string[];
  /** Only nodes carrying every one of these labels. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Balanced mode: weight per figure; empty takes the manager's --weights. */
  readonly weights?: Readonly<Partial<Record<UsageFigure, number>>>;
  /** Upper bound per figure, percent: a node over any bound is not chosen. */
  readonly limits?: Readonly<Partial<Record<UsageFigure, number>>>;
  /** All mode: at most this many nodes run the task at once. */
  readonly maxConcurrency?: NodeCount;
  /** All mode: once this many nodes failed, no further node starts the task. */
  readonly maxErrors?: NodeCount;
  /** All mode: how long replies are gathered, ms; zero or unset: until each node answered or is unreachable. */
  readonly gatherTimeoutMs?: number;
}

/** How a task placed on several nodes fared on one of them. */
export type NodeRunStatus = "running" | "finished" | "failed" | "timed-out" | "unreachable" | "not-started";

/** One node's part of a task placed on several nodes. */
export interface NodeResult {
  /** Node name. */
  readonly node: string;
  /** How the task fared there. */
  readonly status: NodeRunStatus;
  /** The node's view of the task, when the node accepted it (the last one known when it is unreachable). */
  readonly view?: TaskView;
  /** Legacy error code when the node has no view (5000-range or transport); zero otherwise. */
  readonly errorCode: number;
  /** Error text naming the node and the cause; empty when errorCode is zero. */
  readonly errorMessage: string;
}
