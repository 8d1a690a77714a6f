import { describe, expect, it } from "vitest";
import { Slots } from "../../src/core/slots.js";

/** Tracks which waiters have their slot, in the order they got it. */
function startLog(): { started: string[]; waitFor: (slots: Slots, name: string) => void } {
  const started: string[] = [];
  return {
    started,
    waitFor: (slots, name) => {
      void slots.acquire().then((ok) => {
        if (ok) started.push(name);
      });
    },
  };
}

/** Lets every promise callback queued so far run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("slots with acceptance first", () => {
  it("hands a free slot to a queued task only once no acceptance is pending", async () => {
    const slots = new Slots(1, 10, { bound: { ms: 60_000, acceptances: 100 } });
    expect(await slots.acquire()).toBe(true);
    const { started, waitFor } = startLog();
    waitFor(slots, "queued");
    const endAcceptance = slots.beginAcceptance();
    slots.release();
    await settle();
    expect(started).toEqual([]);
    expect(slots.free).toBe(false);
    endAcceptance();
    await settle();
    expect(started).toEqual(["queued"]);
    expect(slots.active).toBe(1);
  });

  it("keeps a new task from a free slot while an acceptance is pending, and starts it after", async () => {
    const slots = new Slots(2, 10, { bound: { ms: 60_000, acceptances: 100 } });
    const { started, waitFor } = startLog();
    const endAcceptance = slots.beginAcceptance();
    waitFor(slots, "new");
    await settle();
    expect(started).toEqual([]);
    expect(slots.queued).toBe(1);
    endAcceptance();
    endAcceptance(); // a second call changes nothing
    await settle();
    expect(started).toEqual(["new"]);
    expect(slots.acceptancesPending).toBe(0);
  });

  it("resumes starting after the bound's count of acceptances under a continuous stream", async () => {
    let boundReached = 0;
    const slots = new Slots(1, 10, { bound: { ms: 60_000, acceptances: 3 }, onBoundReached: () => boundReached++ });
    expect(await slots.acquire()).toBe(true);
    const { started, waitFor } = startLog();
    waitFor(slots, "first");
    waitFor(slots, "second");
    // Acceptances overlap, so one is always pending: the stream never pauses.
    let pending = slots.beginAcceptance();
    slots.release();
    const order: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const next = slots.beginAcceptance();
      pending();
      pending = next;
      await settle();
      order.push(`accepted ${i}: ${started.join(",") || "none"}`);
    }
    expect(order).toEqual(["accepted 1: none", "accepted 2: none", "accepted 3: first"]);
    expect(boundReached).toBe(1);
    expect(slots.acceptancesPending).toBe(1);
    // The second waits for the next free slot, held again for the pending acceptance.
    slots.release();
    await settle();
    expect(started).toEqual(["first"]);
    pending();
    await settle();
    expect(started).toEqual(["first", "second"]);
    expect(boundReached).toBe(1);
  });

  it("resumes starting once the bound's time passed under a continuous stream", async () => {
    let boundReached = 0;
    const slots = new Slots(1, 10, { bound: { ms: 5, acceptances: 1_000_000 }, onBoundReached: () => boundReached++ });
    expect(await slots.acquire()).toBe(true);
    const { started, waitFor } = startLog();
    waitFor(slots, "queued");
    let pending = slots.beginAcceptance();
    slots.release();
    // Acceptances keep coming, overlapping, until the queued task has started.
    const deadline = Date.now() + 10_000;
    while (started.length === 0 && Date.now() < deadline) {
      const next = slots.beginAcceptance();
      pending();
      pending = next;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(started).toEqual(["queued"]);
    expect(boundReached).toBe(1);
    expect(slots.acceptancesPending).toBe(1);
    pending();
  });

  it("keeps the queue's order when starting resumes", async () => {
    const slots = new Slots(2, 10);
    expect(await slots.acquire()).toBe(true);
    expect(await slots.acquire()).toBe(true);
    const { started, waitFor } = startLog();
    for (const name of ["a", "b", "c"]) waitFor(slots, name);
    const endAcceptance = slots.beginAcceptance();
    slots.release();
    slots.release();
    await settle();
    expect(started).toEqual([]);
    endAcceptance();
    await settle();
    expect(started).toEqual(["a", "b"]);
    expect(slots.queued).toBe(1);
  });

  it("lets a queued task that gives up while held leave the queue", async () => {
    const slots = new Slots(1, 10);
    expect(await slots.acquire()).toBe(true);
    const abort = new AbortController();
    const waiting = slots.acquire(abort.signal);
    const endAcceptance = slots.beginAcceptance();
    slots.release();
    abort.abort();
    expect(await waiting).toBe(false);
    endAcceptance();
    expect(slots.queued).toBe(0);
    expect(slots.active).toBe(0);
    expect(slots.free).toBe(true);
  });
});
