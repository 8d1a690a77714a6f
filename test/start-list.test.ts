import { describe, expect, it } from "vitest";
import { createStartList } from "../src/start-list.js";

describe("a start list", () => {
  it("stops its parts in the reverse order of their start, each awaited before the next", async () => {
    const starts = createStartList();
    const events: string[] = [];
    for (const name of ["store", "runners", "listeners", "tasks"]) {
      starts.started(name, async () => {
        events.push(`${name} stopping`);
        // A stop that takes a turn of the event loop: the next must not begin before it ends.
        await new Promise<void>((resolve) => setImmediate(resolve));
        events.push(`${name} stopped`);
      });
    }
    expect(starts.names).toEqual(["store", "runners", "listeners", "tasks"]);
    await starts.close();
    expect(events).toEqual(["tasks stopping", "tasks stopped", "listeners stopping", "listeners stopped", "runners stopping", "runners stopped", "store stopping", "store stopped"]);
  });

  it("stops only what started: a start cut short closes the parts it got to", async () => {
    const starts = createStartList();
    const stopped: string[] = [];
    starts.started("store", () => void stopped.push("store"));
    starts.started("http listener", () => void stopped.push("http listener"));
    // The next part failed to start (a port in use): it was never recorded.
    await starts.close();
    expect(stopped).toEqual(["http listener", "store"]);
  });

  it("still stops the earlier parts when a later part's stop fails, then throws that failure naming the part", async () => {
    const starts = createStartList();
    const stopped: string[] = [];
    starts.started("store", () => void stopped.push("store"));
    starts.started("notifier", () => {
      throw new Error("receiver gone");
    });
    starts.started("accepting", () => void stopped.push("accepting"));
    await expect(starts.close()).rejects.toThrow("stopping notifier failed: receiver gone");
    expect(stopped).toEqual(["accepting", "store"]);
  });

  it("closes once: a second close returns the same promise and stops nothing again", async () => {
    const starts = createStartList();
    let stops = 0;
    starts.started("store", () => void stops++);
    const first = starts.close();
    expect(starts.close()).toBe(first);
    await first;
    await starts.close();
    expect(stops).toBe(1);
  });

  it("refuses a part that starts while it closes, so nothing is left running", async () => {
    const starts = createStartList();
    starts.started("store", () => undefined);
    const closing = starts.close();
    expect(() => starts.started("metrics", () => undefined)).toThrow("cannot start metrics: the node is closing");
    await closing;
    expect(starts.names).toEqual(["store"]);
  });
});
