import { describe, expect, it } from "vitest";
import { cachedHostFacts, readHostFacts, type HostFacts } from "../../src/executor/host-facts.js";

describe("cachedHostFacts", () => {
  it("reads the facts once and answers later calls from memory", async () => {
    let reads = 0;
    const facts = cachedHostFacts(async () => {
      reads++;
      return readHostFacts();
    });
    const [first, second] = await Promise.all([facts(), facts()]);
    expect(await facts()).toBe(first);
    expect(second).toBe(first);
    expect(reads).toBe(1);
    expect(first.cpuCount).toBeGreaterThan(0);
    expect(first.memoryBytes).toBeGreaterThan(0);
  }, 20_000);

  it("reads again after a first read that failed", async () => {
    let reads = 0;
    const facts = cachedHostFacts(async () => {
      reads++;
      if (reads === 1) throw new Error("lscpu: not found");
      return { cpuCount: 2 } as HostFacts;
    });
    await expect(facts()).rejects.toThrow("lscpu: not found");
    expect((await facts()).cpuCount).toBe(2);
    expect(reads).toBe(2);
  });
});
