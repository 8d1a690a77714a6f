import { execFileSync, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

/*
 * The placement record's write order, seen in the system calls a real process makes
 * (strace -f -y): a new entry is created under its name, fdatasynced, and its directory
 * fsynced, all before put() resolves (the manager forwards the task only after that); a
 * change goes through a temp file, fdatasync, rename and directory fsync.
 */

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
let strace = "";
try {
  strace = execFileSync("sh", ["-c", "command -v strace"], { encoding: "utf8" }).trim();
} catch {
  console.warn("placement-writes test skipped: strace is not installed");
}
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** The traced calls on files under `dir`, in order: "create X", "fsync X", "rename X -> Y", and the marker lines the fixture wrote. */
function parseTrace(text: string, dir: string): string[] {
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
    const paths = [...args.matchAll(/"([^"]*)"|<([^>]*)>/g)].map((m) => m[1] ?? m[2] ?? "").filter((p) => p.startsWith(dir));
    if (paths.length === 0) continue;
    const rel = (p: string): string => p.slice(dir.length).replace(/\.\d+\.\d+\.tmp$/, ".tmp") || "/";
    if (call === "rename" || call === "renameat" || call === "renameat2") events.push(`rename ${rel(paths[0]!)} -> ${rel(paths[1] ?? "")}`);
    else if (call === "openat" && /O_CREAT/.test(args)) events.push(`create${/O_EXCL/.test(args) ? " (exclusive)" : ""} ${rel(paths[0]!)}`);
    else if (call === "fsync" || call === "fdatasync") events.push(`fsync ${rel(paths[0]!)}`);
  }
  return events;
}

describe.skipIf(strace === "")("the placement record's writes", () => {
  it("create a new entry under its name, fdatasync it and fsync the directory before put() resolves; a change goes by temp file and rename", async () => {
    const dir = await mkdtemp(join(tmpdir(), "drce-placement-order-"));
    dirs.push(dir);
    const traceFile = `${dir}.trace`;
    const run = spawnSync(
      strace,
      ["-f", "-y", "-qq", "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2,write", "-o", traceFile, process.execPath, "--import", "tsx", "test/fixtures/placement-writes.mts", dir],
      { cwd: repoRoot, encoding: "utf8", timeout: 60_000 },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toBe("PLACED\nMOVED\n");
    const text = await readFile(traceFile, "utf8");
    await rm(traceFile, { force: true });
    expect(parseTrace(text, dir)).toEqual([
      "create (exclusive) /p1.json",
      "fsync /p1.json",
      "fsync /",
      "PLACED",
      "create /.p1.json.tmp",
      "fsync /.p1.json.tmp",
      "rename /.p1.json.tmp -> /p1.json",
      "fsync /",
      "MOVED",
    ]);
  });
});
