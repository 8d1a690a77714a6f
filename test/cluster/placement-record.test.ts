import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createPlacementRecord, type PlacementEntry } from "../../src/cluster/placement-record.js";

const dirs: string[] = [];
afterEach(async () => {
  while (dirs.length > 0) await rm(dirs.pop()!, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "drce-record-"));
  dirs.push(dir);
  return dir;
}

const entry = (id: string, fields: Partial<PlacementEntry> = {}): PlacementEntry => ({ id, alias: "", ids: [id], digest: `d-${id}`, kind: "one", nodes: ["n1"], skipped: {}, mode: 1, placedAt: 1000, ...fields });

describe("the placement record", () => {
  it("finds a task by its id, a subtask's id and its alias, and reads every entry back after a restart", async () => {
    const dir = await freshDir();
    const record = createPlacementRecord({ dir });
    await record.put(entry("41", { alias: "build", ids: ["41", "41.1", "41.2"], nodes: ["n2"] }));
    await record.put(entry("42", { kind: "all", nodes: ["n1", "n3"], skipped: { n2: "unreachable" }, placedAt: 2000 }));
    const reopened = createPlacementRecord({ dir });
    expect(await reopened.load()).toBe(2);
    expect(reopened.find("41.2")?.nodes).toEqual(["n2"]);
    expect(reopened.find("build")?.id).toBe("41");
    expect(reopened.find("42")).toMatchObject({ kind: "all", nodes: ["n1", "n3"], skipped: { n2: "unreachable" } });
    expect(reopened.entries().map((item) => item.id)).toEqual(["42", "41"]);
    expect(reopened.find("43")).toBeUndefined();
  });

  it("gives an alias to the newest task that took it, before and after a restart", async () => {
    const dir = await freshDir();
    const record = createPlacementRecord({ dir });
    await record.put(entry("50", { alias: "nightly", placedAt: 5000 }));
    await record.put(entry("51", { alias: "nightly", placedAt: 6000 }));
    expect(record.find("nightly")?.id).toBe("51");
    const reopened = createPlacementRecord({ dir });
    await reopened.load();
    expect(reopened.find("nightly")?.id).toBe("51");
  });

  it("removes an entry durably, leaves no temp file, and reports an unreadable entry instead of loading it", async () => {
    const dir = await freshDir();
    const record = createPlacementRecord({ dir });
    await record.put(entry("60"));
    await record.put({ ...entry("60"), nodes: ["n4"] });
    await record.remove("60");
    await record.remove("60");
    expect(record.find("60")).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
    await writeFile(join(dir, "61.json"), "{not json");
    const bad: string[] = [];
    expect(await createPlacementRecord({ dir }).load((file) => bad.push(file))).toBe(0);
    expect(bad).toEqual(["61.json"]);
  });

  it("takes an empty entry file (a first write a crash cut short) as never written: removed at start, not reported, its id free", async () => {
    const dir = await freshDir();
    await writeFile(join(dir, "70.json"), "");
    const bad: string[] = [];
    const record = createPlacementRecord({ dir });
    expect(await record.load((file) => bad.push(file))).toBe(0);
    expect(bad).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
    await record.put(entry("70"));
    expect(JSON.parse(await readFile(join(dir, "70.json"), "utf8"))).toMatchObject({ id: "70", nodes: ["n1"] });
  });

  it("places an id again over the file of an entry it could not read, and reads the new entry back", async () => {
    const dir = await freshDir();
    await writeFile(join(dir, "71.json"), "{not json");
    const record = createPlacementRecord({ dir });
    const bad: string[] = [];
    await record.load((file) => bad.push(file));
    expect(bad).toEqual(["71.json"]);
    await record.put(entry("71", { nodes: ["n5"] }));
    const reopened = createPlacementRecord({ dir });
    expect(await reopened.load()).toBe(1);
    expect(reopened.find("71")?.nodes).toEqual(["n5"]);
    expect(await readdir(dir)).toEqual(["71.json"]);
  });
});
