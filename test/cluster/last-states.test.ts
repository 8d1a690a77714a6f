import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createLastStates } from "../../src/cluster/last-states.js";
import { TaskState } from "../../src/domain/states.js";
import { taskStatus } from "../../src/domain/task.js";
import type { TaskView } from "../../src/domain/view.js";
import { createLogger } from "../../src/logger.js";

const dirs: string[] = [];
afterEach(async () => {
  while (dirs.length > 0) await rm(dirs.pop()!, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "drce-last-states-"));
  dirs.push(dir);
  return dir;
}

const logger = createLogger("silent");
const view = (id: string, state: TaskState, extra: Partial<TaskView> = {}): TaskView => ({ status: taskStatus({ id, state }), timeMs: 5, subtasks: [], ...extra });
const lines = async (dir: string): Promise<string[]> => (await readFile(join(dir, "last-states.log"), "utf8")).split("\n").filter((line) => line !== "");
const states = (kept: Map<string, Map<string, TaskView>>): Record<string, Record<string, TaskState>> =>
  Object.fromEntries([...kept].map(([node, byId]) => [node, Object.fromEntries([...byId].map(([id, kept]) => [id, kept.status.state]))]));

describe("the manager's kept last states", () => {
  it("writes each change without waiting for a close, and reads the latest state of each task on each node back, without its output", async () => {
    const dir = await freshDir();
    const kept = createLastStates({ dir, logger });
    await kept.load();
    kept.note("n1", view("1", TaskState.InProgress, { stdout: new Uint8Array([1, 2, 3]) }));
    kept.note("n1", view("1", TaskState.Finished));
    kept.note("n2", view("1", TaskState.InProgress));
    kept.note("n2", view("2", TaskState.Finished));
    kept.forget("n2", ["2"]);
    await kept.flushed();
    // Written though never closed: what a SIGKILL of the manager would leave.
    expect(await lines(dir)).toHaveLength(5);
    const again = createLastStates({ dir, logger });
    const read = await again.load();
    expect(states(read)).toEqual({ n1: { "1": TaskState.Finished }, n2: { "1": TaskState.InProgress } });
    expect(read.get("n1")?.get("1")?.stdout).toBeUndefined();
    // Read back compacted: one line per live state.
    expect(await lines(dir)).toHaveLength(2);
    await again.close();
  });

  it("skips a last line a crash cut short and keeps the states before it", async () => {
    const dir = await freshDir();
    const kept = createLastStates({ dir, logger });
    await kept.load();
    kept.note("n1", view("7", TaskState.InProgress));
    await kept.close();
    await appendFile(join(dir, "last-states.log"), '{"n":"n1","v":{"status":{"id":"7","sta');
    const read = await createLastStates({ dir, logger }).load();
    expect(states(read)).toEqual({ n1: { "7": TaskState.InProgress } });
  });

  it("starts empty without a log, and skips lines that are not JSON instead of failing the start", async () => {
    const dir = await freshDir();
    expect((await createLastStates({ dir, logger }).load()).size).toBe(0);
    const other = await freshDir();
    await writeFile(join(other, "last-states.log"), "not json\n");
    expect((await createLastStates({ dir: other, logger }).load()).size).toBe(0);
    expect(() => createLastStates({ dir: "", logger })).toThrow(/dir is required/);
  });
});
