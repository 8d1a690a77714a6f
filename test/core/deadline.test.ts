import { describe, expect, it } from "vitest";
import { createDeadline } from "../../src/core/deadline.js";

/** Resolves with the signal's reason once it aborts. */
const abortOf = (signal: AbortSignal): Promise<unknown> => new Promise((resolve) => signal.addEventListener("abort", () => resolve(signal.reason), { once: true }));

describe("a deadline", () => {
  it("aborts its signal with a TimeoutError once its time is up", async () => {
    const deadline = createDeadline(1);
    expect(await abortOf(deadline.signal)).toMatchObject({ name: "TimeoutError" });
  });

  it("aborts with its parent, for the parent's reason", async () => {
    const parent = new AbortController();
    const deadline = createDeadline(Number.POSITIVE_INFINITY, parent.signal);
    const aborted = abortOf(deadline.signal);
    parent.abort("stopped");
    expect(await aborted).toBe("stopped");
  });

  it("starts aborted under a parent that is", () => {
    const parent = new AbortController();
    parent.abort("gone");
    expect(createDeadline(1000, parent.signal).signal.reason).toBe("gone");
  });

  it("once cleared, follows neither its time nor its parent", async () => {
    const parent = new AbortController();
    const deadline = createDeadline(1, parent.signal);
    deadline.clear();
    parent.abort("late");
    // A deadline of 1 ms that is still not aborted after a later 5 ms timer was cleared.
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(deadline.signal.aborted).toBe(false);
  });
});
