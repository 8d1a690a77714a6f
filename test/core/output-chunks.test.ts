import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { OutputChunk } from "../../src/core/api.js";
import { createTaskCore } from "../../src/core/task-core.js";
import { TaskMode, TaskState } from "../../src/domain/states.js";
import { taskSpec } from "../../src/domain/task.js";
import { createLocalRunner } from "../../src/executor/local-runner.js";
import { createTaskStore } from "../../src/store/task-store.js";

/*
 * A consumer that keeps the chunks a stream hands it (a manager forwarding them to a slow
 * caller) must find them as they were read: with several chunks of a MiB, a stream that
 * reused its read buffers would overwrite the first with the third.
 */

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

// Distinct lines, so that a chunk overwritten by a later one cannot look right: 4.3 MB.
const lines = 600_000;
const expected = Buffer.from(Array.from({ length: lines }, (_, i) => `${i + 1}\n`).join(""));
const writer = `let s = ""; for (let i = 1; i <= ${lines}; i++) s += i + "\\n"; process.stdout.write(s);`;

async function coreWithFinishedTask(): Promise<{ core: ReturnType<typeof createTaskCore>; id: string }> {
  const dataDir = await mkdtemp(join(tmpdir(), "drce-chunks-"));
  const store = await createTaskStore({ dataDir });
  const core = createTaskCore({
    store,
    localRunner: createLocalRunner(),
    maxConcurrent: 2,
    maxQueue: 10,
    maxOutputBytes: 0,
    maxTaskMs: 0,
    maxFileBytes: 1024 * 1024,
    allowedDirs: [],
    allowEnv: [],
    eventHistory: 100,
    sampleIntervalMs: 1000,
  });
  await core.init();
  cleanups.push(async () => {
    await core.shutdown(1000);
    await rm(dataDir, { recursive: true, force: true });
  });
  const { view } = await core.submit(taskSpec({ argv: [process.execPath, "-e", writer], mode: TaskMode.Sync }), undefined, "none");
  expect(view.status.state).toBe(TaskState.Finished);
  expect(view.status.stdoutSize).toBe(expected.length);
  return { core, id: view.status.id };
}

async function keptChunks(events: AsyncIterable<{ kind: string; chunk?: OutputChunk }>): Promise<OutputChunk[]> {
  const kept: OutputChunk[] = [];
  for await (const event of events) if (event.kind === "output" && event.chunk !== undefined) kept.push(event.chunk);
  return kept;
}

describe("output chunks handed to a caller", () => {
  it("keep their bytes after the stream has read further, without a copy by the caller", async () => {
    const { core, id } = await coreWithFinishedTask();
    const kept = await keptChunks(core.streamOutput(id, { stdout: 0, stderr: 0 }, false, new AbortController().signal));
    // Several large chunks, or the test would not see a buffer used twice.
    expect(kept.filter((chunk) => chunk.data.length >= 1024 * 1024).length).toBeGreaterThanOrEqual(3);
    expect(kept.map((chunk) => chunk.offset)).toEqual(kept.map((_, i) => kept.slice(0, i).reduce((sum, c) => sum + c.data.length, 0)));
    expect(Buffer.concat(kept.map((chunk) => chunk.data)).equals(expected)).toBe(true);
  }, 20_000);

  it("are the same bytes when lent to a consumer that is done with each before the next", async () => {
    const { core, id } = await coreWithFinishedTask();
    const copies: Buffer[] = [];
    for await (const event of core.streamOutput(id, { stdout: 0, stderr: 0 }, false, new AbortController().signal, { lendBuffers: true })) {
      if (event.kind === "output") copies.push(Buffer.from(event.chunk.data));
    }
    expect(Buffer.concat(copies).equals(expected)).toBe(true);
  }, 20_000);
});
