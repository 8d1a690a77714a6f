import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventLog } from "../src/core/event-log.js";
import { emptyHostSnapshot } from "../src/executor/host-sampler.js";
import { createInternalErrors } from "../src/internal-errors.js";
import { createNodeMetrics } from "../src/metrics.js";
import { metricValue, scrape } from "./helpers/metrics.js";
import { startNode, type TestNode } from "./helpers/node.js";

/** A logger that keeps what it was given at error level. */
function recordingLogger(): { readonly lines: { fields: Record<string, unknown>; message: string }[]; error(fields: Record<string, unknown>, message: string): void } {
  const lines: { fields: Record<string, unknown>; message: string }[] = [];
  return { lines, error: (fields, message) => lines.push({ fields, message }) };
}

describe("the internal-error path", () => {
  it("logs each failure with its stack and details, and counts it by part", () => {
    const logger = recordingLogger();
    const errors = createInternalErrors(logger);
    expect(errors.counts()).toEqual({ task: 0, containment: 0 });
    errors.report("containment", "the escaped processes of a task could not be looked for", new Error("EACCES /proc"), { task: "7" });
    errors.report("task", "internal error while running a task", "not an Error", { task: "8" });
    expect(errors.counts()).toEqual({ task: 1, containment: 1 });
    expect(logger.lines[0]?.message).toBe("the escaped processes of a task could not be looked for");
    expect(logger.lines[0]?.fields).toMatchObject({ task: "7" });
    expect(String(logger.lines[0]?.fields["err"])).toMatch(/^Error: EACCES \/proc\n\s+at /);
    expect(logger.lines[1]?.fields).toEqual({ task: "8", err: "not an Error" });
  });

  it("refuses to be made without a logger", () => {
    expect(() => createInternalErrors(undefined as never)).toThrow(/logger is required/);
  });

  it("shows in the metrics as drce_internal_errors_total by part, zero included", async () => {
    const errors = createInternalErrors(recordingLogger());
    const core = { list: () => [], slots: { active: 0, queued: 0 }, events: new EventLog(16) };
    const metrics = createNodeMetrics({ core, host: () => emptyHostSnapshot, internalErrors: errors.counts });
    try {
      expect(metricValue(await metrics.render(), "drce_internal_errors_total", { part: "task" })).toBe(0);
      errors.report("task", "internal error while running a task", new Error("boom"));
      errors.report("task", "internal error while running a task", new Error("boom"));
      const text = await metrics.render();
      expect(metricValue(text, "drce_internal_errors_total", { part: "task" })).toBe(2);
      expect(metricValue(text, "drce_internal_errors_total", { part: "containment" })).toBe(0);
    } finally {
      metrics.close();
    }
  });
});

describe("a node's internal errors", () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode();
  });
  afterAll(async () => {
    await node?.stop();
  });

  it("are counted on its /metrics from the start", async () => {
    const text = await scrape(node.url);
    expect(metricValue(text, "drce_internal_errors_total", { part: "task" })).toBe(0);
    expect(metricValue(text, "drce_internal_errors_total", { part: "containment" })).toBe(0);
  });
});
