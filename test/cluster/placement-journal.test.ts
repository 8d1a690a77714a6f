import { execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { createPlacementRecord, type PlacementEntry } from "../../src/cluster/placement-record.js";

/*
 * The placement record with a journal (as a manager runs it): a put or remove is durable once
 * its journal record is, the entry files follow unsynced and are made durable by checkpoints,
 * and a restart applies the journal over the files.
 */

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** A fresh directory holding the record's entries (`placements`) and its journal (`journal`). */
async function freshRoot(): Promise<{ root: string; dir: string; journalDir: string }> {
  const root = await mkdtemp(join(tmpdir(), "drce-record-journal-"));
  dirs.push(root);
  return { root, dir: join(root, "placements"), journalDir: join(root, "journal") };
}

const entry = (id: string, fields: Partial<PlacementEntry> = {}): PlacementEntry => ({ id, alias: "", ids: [id], digest: `d-${id}`, kind: "one", nodes: ["n1"], skipped: {}, mode: 1, placedAt: 1000, ...fields });
const segments = (dir: string): string[] => readdirSync(dir).filter((name) => /^\d+\.seg$/.test(name));

let strace = "";
try {
  strace = execFileSync("sh", ["-c", "command -v strace"], { encoding: "utf8" }).trim();
} catch {
  console.warn("the journaled placement record's strace test is skipped: strace is not installed");
}

/** The traced calls under `root`, in order: "create X", "fsync X", "rename X -> Y", and the marker lines the fixture wrote. */
function parseTrace(text: string, root: string): string[] {
  const events: string[] = [];
  for (const line of text.split("\n")) {
    const marker = /write\(1<[^>]*>, "(\w+)\\n"/.exec(line);
    if (marker !== null) {
      events.push(marker[1]!);
      continue;
    }
    // A call another thread interrupted is logged "<unfinished ...>" where it started (its place in the order).
    const match = /^\d+\s+(\w+)\((.*?)(?:\)\s+=\s+(-?\d+)|\s+<unfinished \.\.\.>)/.exec(line);
    if (match === null || (match[3] !== undefined && Number(match[3]) < 0)) continue;
    const [, call, args] = match as unknown as [string, string, string];
    const paths = [...args.matchAll(/"([^"]*)"|<([^>]*)>/g)].map((m) => m[1] ?? m[2] ?? "").filter((p) => p.startsWith(root));
    if (paths.length === 0) continue;
    const rel = (p: string): string => p.slice(root.length).replace(/\.\d+\.\d+\.tmp$/, ".tmp") || "/";
    if (call === "rename" || call === "renameat" || call === "renameat2") events.push(`rename ${rel(paths[0]!)} -> ${rel(paths[1] ?? "")}`);
    else if (call === "openat" && /O_CREAT/.test(args)) events.push(`create ${rel(paths[0]!)}`);
    else if (call === "fsync" || call === "fdatasync") events.push(`fsync ${rel(paths[0]!)}`);
  }
  return events;
}

describe("the placement record with a journal", () => {
  it.skipIf(strace === "")("makes a put durable by an fdatasync of its journal segment before it resolves, and writes no entry file until a checkpoint or its close", async () => {
    const { root, dir, journalDir } = await freshRoot();
    const traceFile = join(root, "trace");
    const run = spawnSync(
      strace,
      ["-f", "-y", "-qq", "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2,write", "-o", traceFile, process.execPath, "--import", "tsx", "test/fixtures/placement-writes.mts", dir, journalDir],
      { cwd: repoRoot, encoding: "utf8", timeout: 60_000 },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toBe("PLACED\nMOVED\nCLOSED\n");
    const events = parseTrace(await readFile(traceFile, "utf8"), root);
    const placed = events.indexOf("PLACED");
    const moved = events.indexOf("MOVED");
    const closed = events.indexOf("CLOSED");
    const segment = "/journal/000000000001.seg";
    // Before each acknowledgement, the segment is fdatasynced.
    expect(placed).toBeGreaterThan(0);
    expect(events.slice(0, placed)).toContain(`fsync ${segment}`);
    expect(events.slice(placed, moved)).toContain(`fsync ${segment}`);
    // The puts touch no entry file: the journal is the record until a checkpoint writes the files.
    expect(events.slice(0, moved).filter((event) => event.includes("/placements"))).toEqual([]);
    // The close, before any checkpoint, writes the entry's newest state, renamed into place and
    // not synced: the journal still holds it, and the next start's checkpoint makes it durable.
    expect(events.slice(moved, closed)).toContain("rename /placements/.p1.json.tmp -> /placements/p1.json");
    expect(events.filter((event) => event.startsWith("fsync /placements"))).toEqual([]);
  });

  it("finds after a restart every entry the journal holds, even when its file never reached the disk, and no entry it removed", async () => {
    const { dir, journalDir } = await freshRoot();
    const record = createPlacementRecord({ dir, journalDir });
    await record.load();
    await record.put(entry("41", { alias: "build", ids: ["41", "41.1"], nodes: ["n2"] }));
    await record.put(entry("42", { placedAt: 2000 }));
    await record.put({ ...entry("42", { placedAt: 2000 }), nodes: ["n3"] });
    await record.put(entry("43"));
    await record.remove("43");
    await record.close();
    // As after a crash of the OS before any checkpoint: unsynced file changes lost.
    await unlink(join(dir, "41.json"));
    await writeFile(join(dir, "42.json"), JSON.stringify(entry("42", { placedAt: 2000 })));
    await writeFile(join(dir, "43.json"), JSON.stringify(entry("43")));
    const reopened = createPlacementRecord({ dir, journalDir });
    expect(await reopened.load()).toBe(2);
    expect(reopened.find("41.1")?.nodes).toEqual(["n2"]);
    expect(reopened.find("build")?.id).toBe("41");
    expect(reopened.find("42")?.nodes).toEqual(["n3"]);
    expect(reopened.find("43")).toBeUndefined();
    // The start's checkpoint brought the files up to the journal.
    expect(readdirSync(dir).sort()).toEqual(["41.json", "42.json"]);
    expect(JSON.parse(await readFile(join(dir, "42.json"), "utf8"))).toMatchObject({ nodes: ["n3"] });
    await reopened.close();
  });

  it("retires its journal's segments by checkpoints as changes come, the entry files then holding every entry", async () => {
    const { dir, journalDir } = await freshRoot();
    const record = createPlacementRecord({ dir, journalDir, checkpointBytes: 4096 });
    await record.load();
    for (let i = 0; i < 300; i++) {
      await record.put(entry(`c${i}`, { placedAt: i }));
      if (i % 2 === 0) await record.remove(`c${i}`);
    }
    await record.close();
    // 300 puts and 150 removes are about 60 KiB of journal: checkpoints kept a few segments of it.
    expect(segments(journalDir).length).toBeLessThanOrEqual(3);
    const files = readdirSync(dir).filter((name) => name.endsWith(".json"));
    expect(files).toHaveLength(150);
    const reopened = createPlacementRecord({ dir, journalDir, checkpointBytes: 4096 });
    expect(await reopened.load()).toBe(150);
    expect(reopened.find("c299")?.nodes).toEqual(["n1"]);
    expect(reopened.find("c298")).toBeUndefined();
    await reopened.close();
  });

  it("keeps every acknowledged put, move and removal across a SIGKILL during puts and checkpoints", { timeout: 60_000 }, async () => {
    const { dir, journalDir } = await freshRoot();
    const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/placement-journal-writer.mts", dir, journalDir], { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => (out += text));
    const exited = once(child, "exit");
    const deadline = Date.now() + 30_000;
    // Enough acknowledged changes that several checkpoints ran.
    while ((out.match(/\n/g) ?? []).length < 600 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    child.kill("SIGKILL");
    await exited;
    const lines = out.split("\n").slice(0, -1);
    expect(lines.length).toBeGreaterThanOrEqual(600);
    const record = createPlacementRecord({ dir, journalDir });
    await record.load();
    // Each entry's changes in the writer's order; the one found is the last acknowledged, or a later one that reached the disk unacknowledged.
    const acknowledged = new Map<number, number>();
    for (const line of lines) {
      const n = Number(/e(\d+)$/.exec(line)![1]);
      const step = line.startsWith("removed ") ? 2 : line.startsWith("moved ") ? 1 : 0;
      acknowledged.set(n, Math.max(acknowledged.get(n) ?? 0, step));
    }
    const stateOf = (step: number): string => ["n1", "n2", "removed"][step]!;
    for (const [n, step] of acknowledged) {
      const steps = [0, ...(n % 3 === 0 ? [1] : []), ...(n % 5 === 0 ? [2] : [])];
      const allowed = steps.filter((later) => later >= step).map(stateOf);
      const found = record.find(`e${n}`);
      expect(allowed, `e${n}`).toContain(found === undefined ? "removed" : found.nodes[0]);
    }
    expect(existsSync(journalDir)).toBe(true);
    await record.close();
  });
});
