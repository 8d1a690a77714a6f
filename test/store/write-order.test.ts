import { execFileSync, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

/*
 * The store's write order, seen in the system calls a real process makes (strace -f -y):
 * every JSON file is written to a temp file, fsynced, renamed over its name, and then its
 * directory is fsynced; a task's request is renamed into place before its status, both only
 * once both are fsynced, and all of it before
 * create() returns (the node acknowledges a submission only after that).
 */

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
let strace = "";
try {
  strace = execFileSync("sh", ["-c", "command -v strace"], { encoding: "utf8" }).trim();
} catch {
  console.warn("write-order test skipped: strace is not installed");
}
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** One traced event: the call and the path(s) it names, in the order they happened. */
interface Event {
  readonly call: string;
  readonly path: string;
  readonly to?: string;
}

function parseTrace(text: string, dataDir: string): Event[] {
  const events: Event[] = [];
  for (const line of text.split("\n")) {
    // e.g. "1234  fsync(23</tmp/x/tasks/t1/.status.json.ab12.tmp>) = 0"
    // A call another thread interrupted is logged "<unfinished ...>" where it started (its
    // place in the order) and "<... resumed>" with its result; only a refused call is dropped.
    const match = /^\d+\s+(\w+)\((.*?)(?:\)\s+=\s+(-?\d+)|\s+<unfinished \.\.\.>)/.exec(line);
    if (match === null || (match[3] !== undefined && Number(match[3]) < 0)) continue;
    const [, call, args] = match as unknown as [string, string, string];
    const paths = [...args.matchAll(/"([^"]*)"|<([^>]*)>/g)].map((m) => m[1] ?? m[2] ?? "").filter((p) => p.startsWith(dataDir));
    if (paths.length === 0) continue;
    const rel = (p: string): string => p.slice(dataDir.length).replace(/\.[0-9a-f]{8}\.tmp$|\.\d+\.\d+\.tmp$/, ".tmp");
    if (call === "rename" || call === "renameat" || call === "renameat2") events.push({ call: "rename", path: rel(paths[0]!), to: rel(paths[1] ?? "") });
    else if (call === "openat" && /O_CREAT/.test(args)) events.push({ call: "create", path: rel(paths[0]!) });
    else if (call === "fsync" || call === "fdatasync") events.push({ call: "fsync", path: rel(paths[0]!) });
  }
  return events;
}

describe.skipIf(strace === "")("the task store's writes", () => {
  it("go temp file, fsync, rename, directory fsync; request before status; all before create() returns", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "drce-order-"));
    dirs.push(dataDir);
    const traceFile = join(dataDir, "..", `${dataDir.split("/").pop()}.trace`);
    const run = spawnSync(
      strace,
      ["-f", "-y", "-qq", "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2,write", "-o", traceFile, process.execPath, "--import", "tsx", "test/fixtures/store-writes.mts", dataDir],
      { cwd: repoRoot, encoding: "utf8", timeout: 60_000 },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toBe("CREATED\nSAVED\n");
    const text = await readFile(traceFile, "utf8");
    await rm(traceFile, { force: true });
    const events = parseTrace(text, dataDir).map((e) => (e.to === undefined ? `${e.call} ${e.path}` : `${e.call} ${e.path} -> ${e.to}`));
    // The process's own "CREATED" line is written to stdout between create() and saveStatus().
    const createdAt = text.split("\n").findIndex((l) => /write\(1<[^>]*>, "CREATED\\n"/.test(l));
    expect(createdAt).toBeGreaterThan(0);
    const createEvents = parseTrace(text.split("\n").slice(0, createdAt).join("\n"), dataDir).length;

    // create(): both temp files are written, then fsynced at once, then renamed request first;
    // the two directory fsyncs run at once. Within each concurrent pair the order is the kernel's.
    const sorted = [...events.slice(0, 2), ...events.slice(2, 4).sort(), ...events.slice(4, 6), ...events.slice(6, 8).sort().reverse(), ...events.slice(8)];
    expect(sorted).toEqual([
      "create /tasks/t1/.request.json.tmp",
      "create /tasks/t1/.status.json.tmp",
      "fsync /tasks/t1/.request.json.tmp",
      "fsync /tasks/t1/.status.json.tmp",
      "rename /tasks/t1/.request.json.tmp -> /tasks/t1/request.json",
      "rename /tasks/t1/.status.json.tmp -> /tasks/t1/status.json",
      // One directory fsync makes both renames durable (concurrent submissions share it).
      "fsync /tasks/t1",
      "fsync /tasks",
    // saveStatus: a state change.
      "create /tasks/t1/.status.json.tmp",
      "fsync /tasks/t1/.status.json.tmp",
      "rename /tasks/t1/.status.json.tmp -> /tasks/t1/status.json",
      "fsync /tasks/t1",
    ]);
    // Everything of create() happened before it returned.
    expect(createEvents).toBe(8);
  });
});

describe.skipIf(strace === "")("a task's returned files", () => {
  it("are fsynced, with their directory and the task's, before the final status that lists them is renamed into place", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "drce-order-"));
    dirs.push(dataDir);
    const traceFile = join(dataDir, "..", `${dataDir.split("/").pop()}.trace`);
    const run = spawnSync(
      strace,
      ["-f", "-y", "-qq", "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2,write", "-o", traceFile, process.execPath, "--import", "tsx", "test/fixtures/store-result-files.mts", dataDir],
      { cwd: repoRoot, encoding: "utf8", timeout: 60_000 },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toBe("FILES\nFINAL\n");
    const text = await readFile(traceFile, "utf8");
    await rm(traceFile, { force: true });
    // Only what saveStatus() did: the trace after the process wrote "FILES".
    const lines = text.split("\n");
    const filesAt = lines.findIndex((l) => /write\(1<[^>]*>, "FILES\\n"/.test(l));
    expect(filesAt).toBeGreaterThan(0);
    const before = parseTrace(lines.slice(0, filesAt).join("\n"), dataDir).map((e) => `${e.call} ${e.path}`);
    expect(before).toContain("create /tasks/t1/files/0");
    expect(before).toContain("create /tasks/t1/files/1");
    const events = parseTrace(lines.slice(filesAt).join("\n"), dataDir).map((e) => (e.to === undefined ? `${e.call} ${e.path}` : `${e.call} ${e.path} -> ${e.to}`));
    const renameAt = events.indexOf("rename /tasks/t1/.status.json.tmp -> /tasks/t1/status.json");
    expect(renameAt, events.join("\n")).toBeGreaterThan(0);
    // Before the rename, in whatever order the kernel ran them (they run at once): the status's
    // own temp file, both returned files, the directory naming them, and the task's directory
    // naming that one.
    expect(events.slice(0, renameAt).sort()).toEqual([
      "create /tasks/t1/.status.json.tmp",
      "fsync /tasks/t1",
      "fsync /tasks/t1/.status.json.tmp",
      "fsync /tasks/t1/files",
      "fsync /tasks/t1/files/0",
      "fsync /tasks/t1/files/1",
    ]);
    // After it, the directory fsync that makes the rename durable.
    expect(events.slice(renameAt + 1)).toEqual(["fsync /tasks/t1"]);
  });
});
