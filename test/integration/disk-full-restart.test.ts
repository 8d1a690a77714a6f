import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { spawnServe, type ChildNode } from "../helpers/child-node.js";
import { until } from "../helpers/node.js";

/*
 * A task whose output fills the disk, seen from outside: a node process on a 4 MiB tmpfs
 * mounted by the test (root only). Its final state must be on disk and published, the node
 * must say so in its log and refuse new work; stopped and started again on the still full
 * disk it must come up, serve the task as it ended (not crashed), refuse new work with a
 * clear error, and take work again once space is freed. Without the permission to mount,
 * the test fails in CI and is skipped elsewhere.
 */

let mountPoint = "";
let mountError = "";
const nodes: ChildNode[] = [];

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("utf8");

/** Fills the file system to its last byte. */
async function fillDisk(): Promise<void> {
  try {
    execFileSync("dd", ["if=/dev/zero", `of=${join(mountPoint, "filler")}`, "bs=64k"], { stdio: "ignore" });
  } catch {
    // dd exits 1 at ENOSPC: that is the point.
  }
  for (let i = 0; i < 64; i++) await writeFile(join(mountPoint, `crumb-${i}`), Buffer.alloc(4096)).catch(() => undefined); // a crumb that does not fit is the point too
}

async function freeDisk(): Promise<void> {
  await rm(join(mountPoint, "filler"), { force: true });
  for (let i = 0; i < 64; i++) await rm(join(mountPoint, `crumb-${i}`), { force: true });
}

/** Submits a task and returns the Connect error it was refused with (undefined when accepted). */
async function refusalOf(node: ChildNode, id: string): Promise<ConnectError | undefined> {
  try {
    await node.client.submitTask({ task: create(TaskSpecSchema, { id, command: "echo never", mode: TaskMode.ASYNC }) });
    return undefined;
  } catch (error) {
    return ConnectError.from(error);
  }
}

/** Posts a legacy async submission and returns its result item. */
async function legacySubmit(node: ChildNode, id: number): Promise<{ state: number; error_code: number; error_message: string }> {
  const data = Buffer.from(JSON.stringify({ session: { tmode: 2 }, command: "echo never" })).toString("base64");
  const reply = await fetch(`${node.url}/drce`, { method: "POST", body: JSON.stringify({ type: 0, id, data }) });
  expect(reply.status).toBe(200);
  return ((await reply.json()) as { state: number; error_code: number; error_message: string }[])[0]!;
}

describe("a node whose disk the output of a task filled", { timeout: 120_000 }, () => {
  beforeAll(async () => {
    try {
      mountPoint = await mkdtemp(join(tmpdir(), "drce-diskfull-restart-"));
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", mountPoint], { stdio: "ignore" });
    } catch (error) {
      mountError = `mounting a tmpfs is not permitted here (needs root): ${String(error)}`;
      if (process.env["CI"] === "true") throw new Error(mountError);
      console.warn(`disk-full restart test skipped: ${mountError}`);
    }
  });
  afterAll(async () => {
    for (const node of nodes) node.kill();
    await Promise.all(nodes.map((node) => node.exited));
    if (mountPoint !== "" && mountError === "") {
      try {
        execFileSync("umount", [mountPoint], { stdio: "ignore" });
        await rmdir(mountPoint);
      } catch {
        // best effort: an unmount failure must not hide the test's result
      }
    }
  });

  it("stores and publishes the task's final state, refuses new work, and after a restart on the full disk serves the task as it ended", async (context) => {
    if (mountError !== "") return context.skip();
    const dataDir = join(mountPoint, "data");
    const first = await spawnServe(["--data-dir", dataDir]);
    nodes.push(first);

    // A watcher of the task, from before it starts.
    const watcher = new AbortController();
    const seen: TaskState[] = [];
    const watching = (async () => {
      for await (const message of first.client.watchTaskEvents({ task: "flood", fromStart: true }, { signal: watcher.signal })) seen.push(message.event!.state);
    })().catch(() => undefined); // ends when the test aborts it or the node stops
    await first.client.submitTask({ task: create(TaskSpecSchema, { id: "flood", command: "head -c 16777216 /dev/zero; echo done >&2", mode: TaskMode.ASYNC }) });
    const ended = await until(
      () => first.client.getTask({ task: "flood" }).then((reply) => reply.result!),
      (result) => result.state !== TaskState.NEW && result.state !== TaskState.QUEUED && result.state !== TaskState.IN_PROGRESS,
      30_000,
      "the flood to end",
    );
    expect(ended.state).toBe(TaskState.FINISHED);
    expect(ended.errorCode).toBe(100);
    expect(ended.errorMessage).toMatch(/storage error while writing stdout \(ENOSPC\); the output is incomplete/);

    // The final state is durable, and watchers saw it.
    const onDisk = JSON.parse(await readFile(join(dataDir, "tasks", "flood", "status.json"), "utf8")) as { state: number; errorCode: number };
    expect(onDisk).toMatchObject({ state: 0, errorCode: 100 });
    await until(() => seen, (states) => states.includes(TaskState.FINISHED), 10_000, "the watcher to see the final state");
    // The node said what happened.
    expect(first.log()).toMatch(/the data directory's disk is full/);

    // New work is refused with a clear error, over Connect and the legacy protocol.
    const refusal = await refusalOf(first, "refused-1");
    expect(refusal?.code).toBe(Code.Unavailable);
    expect(refusal?.metadata.get("drce-error-code")).toBe("100");
    expect(refusal?.rawMessage).toMatch(/disk is full \(ENOSPC\); the node takes no new tasks until space is freed/);
    expect(await legacySubmit(first, 9201)).toMatchObject({ state: 6, error_code: 100 });

    // SIGTERM on the full disk: a clean exit, which ends the watcher's stream.
    first.proc.kill("SIGTERM");
    expect((await first.exit()).code).toBe(0);
    await watching;
    watcher.abort();

    // Started again while the disk is full to its last byte.
    await fillDisk();
    // The whole kept output in the FetchTask reply (not the first MiB of it), to compare sizes.
    const second = await spawnServe(["--data-dir", dataDir, "--inline-output-bytes", "0"]);
    nodes.push(second);
    expect(second.log()).toMatch(/the data directory's disk is full/);
    const served = (await second.client.getTask({ task: "flood" })).result!;
    expect(served.state).toBe(TaskState.FINISHED);
    expect(served.errorCode).toBe(100);
    const fetched = (await second.client.fetchTask({ task: "flood" })).result!;
    expect(fetched.stdout.length).toBeGreaterThan(0);
    expect(BigInt(fetched.stdout.length)).toBe(fetched.stdoutSize);
    expect(text(fetched.stderr)).toBe("");
    const refusedAgain = await refusalOf(second, "refused-2");
    expect(refusedAgain?.code).toBe(Code.Unavailable);
    expect(refusedAgain?.metadata.get("drce-error-code")).toBe("100");
    expect(refusedAgain?.rawMessage).not.toContain(mountPoint);
    expect(await legacySubmit(second, 9202)).toMatchObject({ state: 6, error_code: 100 });

    // Space freed: the node takes work again.
    await freeDisk();
    await second.client.deleteTask({ task: "flood" });
    const next = await until(
      () => second.client.submitTask({ task: create(TaskSpecSchema, { command: "echo back" }) }).then((reply) => reply.result, () => undefined),
      (result) => result?.state === TaskState.FINISHED,
      10_000,
      "a task once space was freed",
    );
    expect(text(next!.stdout)).toBe("back\n");
    expect(second.log()).toMatch(/the data directory's disk has room again/);
    second.proc.kill("SIGTERM");
    expect((await second.exit()).code).toBe(0);
  });
});
