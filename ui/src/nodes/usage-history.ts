import type { ResourceUsage } from "../../../gen/drce/v1/node_service_pb.js";

/** The eight load figures, in the order of the proto's ResourceUsage, with the names the view shows. */
export const usageFigures: readonly { readonly key: keyof Omit<ResourceUsage, "$typeName" | "$unknown">; readonly title: string }[] = [
  { key: "cpu", title: "CPU" },
  { key: "iowait", title: "I/O wait" },
  { key: "vram", title: "Virtual memory" },
  { key: "rram", title: "Real memory" },
  { key: "disk", title: "Disk" },
  { key: "processes", title: "Processes" },
  { key: "threads", title: "Threads" },
  { key: "loadavg", title: "Load average" },
];

/** One sample of a node's load: when (Unix ms) and its eight figures, percent. */
export interface UsagePoint {
  /** When the figures were sampled, Unix ms. */
  readonly atMs: number;
  /** The eight figures in the order of {@link usageFigures}. */
  readonly figures: readonly number[];
}

/** How many samples a chart keeps: older ones fall off its left edge. */
export const historyLength = 300;

/** The point of one ResourceUsage taken at `atMs`. */
export function usagePoint(atMs: number, usage: ResourceUsage | undefined): UsagePoint {
  return { atMs, figures: usageFigures.map((figure) => (usage === undefined ? 0 : usage[figure.key])) };
}

/**
 * A history with one more point: a point no later than the last one is dropped (the same
 * heartbeat read twice, or a report replayed), and the history keeps {@link historyLength}.
 */
export function withPoint(history: readonly UsagePoint[], point: UsagePoint): readonly UsagePoint[] {
  const last = history[history.length - 1];
  if (last !== undefined && point.atMs <= last.atMs) return history;
  const next = [...history, point];
  return next.length > historyLength ? next.slice(next.length - historyLength) : next;
}
