import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { createTaskStore } from "../../src/store/task-store.js";

/*
 * A journaled store in a real child process, SIGKILLed while 16 tasks at a time go through
 * acceptance, two statuses and (every fifth) deletion, with checkpoints every 16 kB: after
 * a restart, every acknowledged write is there, no deleted task is back, and every task
 * directory is whole (a status and a request that parse).
 */

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Runs the writer fixture; kills it after `acks` acknowledgements, unless it dies by itself first. */
async function runWriter(dataDir: string, acks: number, crashAt = "", firstTask = 0): Promise<string[]> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/store-journal-writer.mts", dataDir, crashAt, String(firstTask)], { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] });
  const lines: string[] = [];
  let pending = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the writer acknowledged ${lines.length} writes in time`));
    }, 60_000);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      pending += chunk;
      const parts = pending.split("\n");
      pending = parts.pop() ?? "";
      lines.push(...parts);
      if (lines.length >= acks && child.exitCode === null) child.kill("SIGKILL");
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (signal === "SIGKILL") resolve();
      else reject(new Error(`the writer exited with ${code}`));
    });
  });
  return lines;
}

/** The states each task was acknowledged in, the last one last (2 accepted, 1 spawned, 0 finished). */
function acknowledged(lines: readonly string[]): Map<string, string> {
  const last = new Map<string, string>();
  for (const line of lines) {
    const [id, state] = line.split(" ") as [string, string];
    last.set(id, state);
  }
  return last;
}

/** Loads the store as a restarted node would, and checks it against what was acknowledged. */
async function checkRestart(dataDir: string, lines: readonly string[]): Promise<number> {
  const store = await createTaskStore({ dataDir, journal: true });
  const loaded = new Map((await store.load()).map((task) => [task.status.id, task]));
  const order = ["2", "1", "0"];
  for (const [id, state] of acknowledged(lines)) {
    if (state === "deleted") {
      expect(loaded.has(id), `${id} was deleted`).toBe(false);
      continue;
    }
    const task = loaded.get(id);
    // Every fifth task is deleted once finished: its deletion may have been under way.
    if (task === undefined && state === "0" && Number(id.slice(1)) % 5 === 0) continue;
    expect(task, `${id} acknowledged as ${state}`).toBeDefined();
    expect(order.indexOf(String(task!.status.state)), `${id}: acknowledged ${state}, loaded ${task!.status.state}`).toBeGreaterThanOrEqual(order.indexOf(state));
    expect(task!.request?.digest).toBe(`d${id.slice(1)}`);
  }
  // Nothing half-applied: each directory left holds a status and a request that parse, as loaded.
  const root = join(dataDir, "tasks");
  for (const name of readdirSync(root)) {
    const status = JSON.parse(readFileSync(join(root, name, "status.json"), "utf8")) as { id: string; state: number };
    expect(status.id).toBe(name);
    expect(status.state).toBe(loaded.get(name)?.status.state);
    expect((JSON.parse(readFileSync(join(root, name, "request.json"), "utf8")) as { digest: string }).digest).toBe(`d${name.slice(1)}`);
  }
  expect(readdirSync(root).length).toBe(loaded.size);
  store.close();
  return loaded.size;
}

describe("a journaled store killed while it writes", { timeout: 120_000 }, () => {
  it("keeps every acknowledged state after a SIGKILL in the middle of its writes and checkpoints", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "drce-journal-crash-"));
    dirs.push(dataDir);
    const lines = await runWriter(dataDir, 1500);
    expect(lines.length).toBeGreaterThanOrEqual(1500);
    // Checkpoints ran: the journal's first segments were retired.
    expect(readdirSync(join(dataDir, "journal"))).not.toContain("000000000001.seg");
    expect(await checkRestart(dataDir, lines)).toBeGreaterThan(100);
    // A second restart finds the same.
    await checkRestart(dataDir, lines);
  });

  it("is correct after a crash in the middle of a checkpoint, once the directories were synced and before a segment was retired", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "drce-journal-crash-"));
    dirs.push(dataDir);
    // It dies by its own crash hook at its first checkpoint (16 kB of records in).
    const lines = await runWriter(dataDir, 1_000_000, "compacting");
    expect(lines.length).toBeGreaterThan(10);
    expect(readdirSync(join(dataDir, "journal")).filter((name) => /^\d+\.seg$/.test(name)).length).toBeGreaterThanOrEqual(2);
    await checkRestart(dataDir, lines);
    // Writes go on after the restart, then a SIGKILL again.
    const more = await runWriter(dataDir, 600, "", 100_000);
    await checkRestart(dataDir, [...lines, ...more]);
  });
});
