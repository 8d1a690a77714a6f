import { create } from "@bufbuild/protobuf";
import { readdir } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { detectCgroups, type CgroupSupport } from "../../src/executor/cgroup.js";
import { groupPrefixFor } from "../../src/executor/containment.js";
import { startNode, until, type TestNode } from "../helpers/node.js";
import { isDead } from "../executor/proc-helpers.js";

/*
 * Containment through a real node: with a cgroup per task a grandchild that called setsid()
 * dies with its task; with --no-cgroups (cgroups: false) it survives, and the result names it
 * in escaped_pids (Connect) and escaped_pids (legacy item).
 */

const support = await detectCgroups();
if (support === undefined) console.warn("cgroup containment tests skipped: no writable cgroup hierarchy (not root, or none mounted)");

/** Starts a setsid grandchild that writes its pid to escaped.pid, waits for it, prints the pid. */
const escapingCommand =
  "setsid sh -c 'echo $$ > escaped.pid; exec sleep 300' </dev/null >/dev/null 2>&1 & " + "while [ ! -s escaped.pid ]; do sleep 0.01; done; cat escaped.pid";

const leftovers = new Set<number>();
const killLater = (pid: number): void => void leftovers.add(pid);

afterAll(() => {
  for (const pid of leftovers) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
});

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("utf8");

/** The groups under drce's parent group that belong to the node with this data directory. */
async function groupsOf(cgroups: CgroupSupport, dataDir: string): Promise<string[]> {
  const parent = cgroups.version === 2 ? cgroups.parent : cgroups.freezer;
  return (await readdir(parent)).filter((name) => name.startsWith(groupPrefixFor(dataDir)));
}

describe.skipIf(support === undefined)("with a cgroup per task", () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode();
  });
  afterAll(async () => node?.stop());

  it("kills a setsid grandchild when its task ends, reports no escaped pids, and removes the group", async () => {
    const r = (await node.client.submitTask({ task: create(TaskSpecSchema, { command: escapingCommand }) })).result!;
    expect(r.state).toBe(TaskState.FINISHED);
    const escaped = Number(text(r.stdout).trim());
    expect(escaped).toBeGreaterThan(0);
    killLater(escaped);
    await until(() => isDead(escaped), (dead) => dead, 5000, "the setsid grandchild dead");
    expect(r.escapedPids).toEqual([]);
    expect(await groupsOf(support!, node.dataDir)).toEqual([]);
  });

  it("kills a setsid grandchild of a terminated task", async () => {
    const id = `contained-${process.pid}-terminate`;
    await node.client.submitTask({ task: create(TaskSpecSchema, { id, command: `${escapingCommand}; sleep 300`, mode: TaskMode.ASYNC }) });
    const pidText = await until(
      async () => text((await node.client.getTask({ task: id, extended: true })).result!.stdout).trim(),
      (t) => /^\d+$/.test(t),
      10_000,
      "the grandchild's pid",
    );
    const escaped = Number(pidText);
    killLater(escaped);
    const r = (await node.client.terminateTask({ task: id, delayMs: 200 })).result!;
    expect(r.state).toBe(TaskState.TERMINATED);
    await until(() => isDead(escaped), (dead) => dead, 5000, "the setsid grandchild dead");
    const final = (await node.client.getTask({ task: id })).result!;
    expect(final.escapedPids).toEqual([]);
    expect(await groupsOf(support!, node.dataDir)).toEqual([]);
  });

  it("counts the setsid grandchild in the task's usage (TASK_THREADS)", async () => {
    const sampled = await startNode({ sampleIntervalMs: 100 });
    try {
      const id = `usage-${process.pid}`;
      await sampled.client.submitTask({ task: create(TaskSpecSchema, { id, command: "setsid sleep 300 & sleep 300", mode: TaskMode.ASYNC }) });
      // The shell, its sleep, and the sleep in a session of its own: three single-threaded processes.
      await until(async () => (await sampled.client.getTask({ task: id, extended: true })).result!.fields["TASK_THREADS"], (n) => n === 3, 10_000, "three threads counted");
      await sampled.client.terminateTask({ task: id, delayMs: 200 });
    } finally {
      await sampled.stop();
    }
  });

  it("still reports a missing program as error 15, as spawn does without a gate", async () => {
    const r = (await node.client.submitTask({ task: create(TaskSpecSchema, { argv: ["/no/such/program"] }) })).result!;
    expect(r.state).toBe(TaskState.NOT_SET);
    expect(r.errorCode).toBe(15);
    expect(await groupsOf(support!, node.dataDir)).toEqual([]);
  });

  it("passes the task's input through the gate untouched", async () => {
    const r = (await node.client.submitTask({ task: create(TaskSpecSchema, { command: "cat", input: Buffer.from("\nline two\n") }) })).result!;
    expect(text(r.stdout)).toBe("\nline two\n");
  });
});

describe("with --no-cgroups", () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ cgroups: false });
  });
  afterAll(async () => node?.stop());

  it("reports the setsid grandchild it could not kill in escaped_pids, over Connect and the legacy protocol", async () => {
    const r = (await node.client.submitTask({ task: create(TaskSpecSchema, { command: escapingCommand }) })).result!;
    expect(r.state).toBe(TaskState.FINISHED);
    const escaped = Number(text(r.stdout).trim());
    killLater(escaped);
    expect(r.escapedPids).toEqual([escaped]);
    expect(await isDead(escaped)).toBe(false);

    const data = Buffer.from(JSON.stringify({ session: { tmode: 1 }, command: escapingCommand })).toString("base64");
    const reply = await fetch(`${node.url}/drce`, { method: "POST", body: JSON.stringify({ type: 0, id: 4242, data }) });
    const [item] = (await reply.json()) as { state: number; stdout: string; escaped_pids?: number[] }[];
    const legacyEscaped = Number(Buffer.from(item!.stdout, "base64").toString().trim());
    killLater(legacyEscaped);
    expect(item!.state).toBe(0);
    expect(item!.escaped_pids).toEqual([legacyEscaped]);
  });

  it("reports nothing for a task whose processes all stayed in its group", async () => {
    const r = (await node.client.submitTask({ task: create(TaskSpecSchema, { command: "sleep 60 & echo hi" }) })).result!;
    expect(text(r.stdout)).toBe("hi\n");
    expect(r.escapedPids).toEqual([]);
  });

  it("creates no control group", async () => {
    await node.client.submitTask({ task: create(TaskSpecSchema, { command: "true" }) });
    if (support !== undefined) expect(await groupsOf(support, node.dataDir)).toEqual([]);
    expect(node.app.config.cgroups).toBe(false);
  });
});
