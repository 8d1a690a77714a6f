import { create } from "@bufbuild/protobuf";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * Process groups as the system's own tools see them (pgrep -g), terminate answers over the
 * legacy protocol (state 0 for a finished task, 3 for an unknown one, twice harmless), and a
 * timeout that ends even a task ignoring SIGTERM within timeout + grace.
 */

let node: TestNode;
beforeAll(async () => {
  node = await startNode();
});
afterAll(async () => node?.stop());

/** pgrep -g PGID: the pids of the group's processes (pgrep exits 1 when there are none). */
function pgrepGroup(pgid: number): number[] {
  const run = spawnSync("pgrep", ["-g", String(pgid)], { encoding: "utf8" });
  if (run.status !== 0 && run.status !== 1) throw new Error(`pgrep failed: ${run.stderr}`);
  return run.stdout.split("\n").filter((l) => l !== "").map(Number);
}

async function legacy(type: number, id: number, data: object): Promise<{ state: number; error_code: number; id: number }> {
  const body = JSON.stringify({ type, id, data: Buffer.from(JSON.stringify(data)).toString("base64") });
  const reply = await fetch(`${node.url}/drce`, { method: "POST", body });
  return ((await reply.json()) as { state: number; error_code: number; id: number }[])[0]!;
}

describe.concurrent("process groups and terminate", () => {
  it("terminating sh -c 'sleep 300 & sleep 300' leaves no process of its group (pgrep -g)", async () => {
    const id = `pgrep-${process.pid}`;
    await node.client.submitTask({ task: create(TaskSpecSchema, { id, command: "sleep 300 & sleep 300", mode: TaskMode.ASYNC }) });
    const running = await until(() => node.client.getTask({ task: id }), (r) => r.result?.state === TaskState.IN_PROGRESS, 10_000, "running");
    const pgid = running.result!.pid;
    await until(() => pgrepGroup(pgid).length, (n) => n === 3, 5000, "the shell and both sleeps in the group");
    const r = (await node.client.terminateTask({ task: id, delayMs: 200 })).result!;
    expect(r.state).toBe(TaskState.TERMINATED);
    await until(() => pgrepGroup(pgid), (pids) => pids.length === 0, 5000, "pgrep -g finds nothing");
  });

  it("legacy terminate of a finished task answers state 0, of an unknown one state 3, and twice is harmless", async () => {
    const done = await legacy(0, 8101, { session: { tmode: 1 }, command: "true" });
    expect(done.state).toBe(0);
    for (let i = 0; i < 2; i++) {
      expect(await legacy(2, 8101, { alg: 1, delay: 100, repeat: 1 })).toMatchObject({ id: 8101, state: 0 });
      expect(await legacy(2, 8199, { alg: 1, delay: 100, repeat: 1 })).toMatchObject({ id: 8199, state: 3, error_code: 0 });
    }
  });

  it("a timeout ends a task that ignores SIGTERM within timeout + grace (SIGKILL after 1 s)", async () => {
    const started = Date.now();
    const r = (await node.client.submitTask({ task: create(TaskSpecSchema, { command: "trap '' TERM; while :; do sleep 1; done", timeoutSeconds: 1 }) })).result!;
    const elapsed = Date.now() - started;
    expect(r.state).toBe(TaskState.EXPIRED);
    expect(r.errorCode).toBe(116);
    expect(r.exitStatus).toBe(137);
    // Node-side: 1 s timeout + 1 s between SIGTERM and SIGKILL, with room for a loaded host.
    expect(r.timeMs).toBeLessThan(3500n);
    expect(elapsed).toBeGreaterThanOrEqual(1900);
    expect(elapsed).toBeLessThan(10_000);
    // Killed processes are gone once their new parent has reaped them.
    await until(() => pgrepGroup(r.pid), (pids) => pids.length === 0, 5000, "pgrep -g finds nothing");
  });
});
