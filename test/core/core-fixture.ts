import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TaskEvent } from "../../src/core/api.js";
import { createTaskCore, type DataTaskCore, type TaskCoreOptions } from "../../src/core/task-core.js";
import { createTaskStore } from "../../src/store/task-store.js";
import { createScriptedRunner, type ScriptedRunner } from "./scripted-runner.js";

/** A core over a store in a fresh directory and a scripted runner, with what it reported. */
export interface ScriptedCore {
  readonly core: DataTaskCore;
  readonly runner: ScriptedRunner;
  readonly events: TaskEvent[];
  readonly internalErrors: unknown[];
  /** Shuts the core down and removes its directory. */
  close(): Promise<void>;
}

/** Builds a scripted core; `overrides` replace the default options (two slots, a queue of ten). */
export async function scriptedCore(overrides: Partial<TaskCoreOptions> = {}): Promise<ScriptedCore> {
  const dataDir = await mkdtemp(join(tmpdir(), "drce-core-"));
  const store = await createTaskStore({ dataDir });
  const runner = createScriptedRunner();
  const events: TaskEvent[] = [];
  const internalErrors: unknown[] = [];
  const core = createTaskCore({
    store,
    localRunner: runner,
    maxConcurrent: 2,
    maxQueue: 10,
    maxOutputBytes: 0,
    maxTaskMs: 0,
    maxFileBytes: 1024 * 1024,
    allowedDirs: [],
    allowEnv: [],
    eventHistory: 1000,
    sampleIntervalMs: 60_000,
    onEvent: (event) => events.push(event),
    onInternalError: (_task, error) => internalErrors.push(error),
    ...overrides,
  });
  await core.init();
  return {
    core,
    runner,
    events,
    internalErrors,
    async close() {
      await core.shutdown(100);
      store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Waits until `check` holds, polling every millisecond, failing after `ms`. */
export async function until(check: () => boolean, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
