import type { ModeStats, StatFigure } from "../core/node-stats.js";
import { adminProperty } from "./admin-text.js";

/*
 * The node's statistics as the original admin replies gave them: the NODE_MSG_PROPERTIES
 * object, its `name=value` fields, and the `key:value,...` list of drceDataStorageProperties.
 */

/** The figure names of NODE_MSG_PROPERTIES, as the protocol's "Stat variables structure" spells them. */
function legacyFigure(f: StatFigure): { min: number; avg: number; max: number } {
  const round = (v: number): number => Math.round(v * 100) / 100;
  return { min: round(f.min), avg: round(f.avg), max: round(f.max) };
}

/** The NODE_MSG_PROPERTIES object of the protocol from the node's statistics. */
export function legacyStats(sync: ModeStats, async: ModeStats): Record<string, unknown> {
  return {
    timeAsyncTask: legacyFigure(async.timeMs),
    timeSyncTask: legacyFigure(sync.timeMs),
    sizeInputBufferSyncTasks: legacyFigure(sync.inputBytes),
    sizeOutputBufferSyncTasks: legacyFigure(sync.outputBytes),
    sizeInputBufferAsyncTasks: legacyFigure(async.inputBytes),
    sizeOutputBufferAsyncTasks: legacyFigure(async.outputBytes),
    cpuUsageAsyncTasks: legacyFigure(async.cpuPercent),
    memoryUsageAsyncTasks: legacyFigure(async.memoryBytes),
    countSyncTasksForMinute: legacyFigure(sync.perMinute),
    countAsyncTasksForMinute: legacyFigure(async.perMinute),
    countSyncTasks: sync.tasks,
    countAsyncTasks: async.tasks,
    countSyncTasksFail: sync.failed,
    countAsyncTasksFail: async.failed,
  };
}

/** Fields `name=value` of an object: scalars as they are, objects as JSON. */
export function propertyFields(values: Record<string, unknown>): string[] {
  return Object.entries(values).map(([name, value]) =>
    adminProperty(name, typeof value === "object" && value !== null ? JSON.stringify(value) : (value as string | number | boolean)),
  );
}

/** The NODE_MSG_PROPERTIES figures as the `key:value,...` list of the original `drceDataStorageProperties`. */
export function storagePropertiesList(stats: Record<string, unknown>): string {
  const items: string[] = [];
  for (const [name, value] of Object.entries(stats)) {
    if (typeof value === "object" && value !== null) {
      for (const [part, v] of Object.entries(value)) items.push(`${name}.${part}:${String(v)}`);
    } else {
      items.push(`${name}:${String(value)}`);
    }
  }
  return items.join(",");
}
