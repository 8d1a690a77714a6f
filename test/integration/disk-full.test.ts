import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, rm, rmdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * Disk full: the node's data directory is a 2 MiB tmpfs mounted by the test (root only).
 * Once it is filled, a submission's write fails: the caller gets Unavailable (legacy state 6,
 * error 100), nothing half-written is left, the node keeps serving, and earlier tasks stay
 * readable. A task whose output fills the disk ends with a result, never a crash.
 */

let mountPoint = "";
let skipReason = "";
try {
  mountPoint = await mkdtemp(join(tmpdir(), "drce-diskfull-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mountPoint], { stdio: "ignore" });
} catch {
  skipReason = "mounting a tmpfs is not permitted here (needs root)";
  console.warn(`disk-full tests skipped: ${skipReason}`);
}

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("utf8");
const filler = (): string => join(mountPoint, "filler");

/** Fills the filesystem to the last byte. */
async function fillDisk(): Promise<void> {
  try {
    execFileSync("dd", ["if=/dev/zero", `of=${filler()}`, "bs=64k"], { stdio: "ignore" });
  } catch {
    // dd exits 1 at ENOSPC: that is the point.
  }
  // Small leftovers (partial blocks) are taken too.
  for (let i = 0; i < 64; i++) await writeFile(join(mountPoint, `crumb-${i}`), Buffer.alloc(4096)).catch(() => undefined);
}

async function freeDisk(): Promise<void> {
  await rm(filler(), { force: true });
  for (let i = 0; i < 64; i++) await rm(join(mountPoint, `crumb-${i}`), { force: true });
}

/** Every file and directory under dir, relative. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) out.push(join(entry.parentPath, entry.name).slice(dir.length + 1));
  return out.sort();
}

describe.skipIf(skipReason !== "")("a full disk under the data directory", { timeout: 60_000 }, () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ dataDir: join(mountPoint, "data"), maxOutputBytes: 0 });
  });
  afterAll(async () => {
    await node?.stop();
    if (mountPoint !== "") {
      try {
        execFileSync("umount", [mountPoint], { stdio: "ignore" });
        await rmdir(mountPoint);
      } catch {
        // best effort: an unmount failure must not hide the test's result
      }
    }
  });

  it("refuses a submission with Unavailable / legacy error 100, leaves nothing half-written, and keeps serving", async () => {
    const before = (await node.client.submitTask({ task: create(TaskSpecSchema, { id: "before", command: "echo kept" }) })).result!;
    expect(before.state).toBe(TaskState.FINISHED);
    const tasksDir = join(node.dataDir, "tasks");
    const filesBefore = await tree(tasksDir);

    await fillDisk();
    let refusal: ConnectError | undefined;
    try {
      await node.client.submitTask({ task: create(TaskSpecSchema, { id: "refused", command: "echo never", input: Buffer.alloc(64 * 1024, 1) }) });
    } catch (error) {
      refusal = ConnectError.from(error);
    }
    expect(refusal?.code).toBe(Code.Unavailable);
    expect(refusal?.metadata.get("drce-error-code")).toBe("100");
    expect(refusal?.rawMessage).toMatch(/storage error/);
    expect(refusal?.rawMessage).not.toContain(mountPoint);

    const data = Buffer.from(JSON.stringify({ session: { tmode: 1 }, command: "echo never", input: "x".repeat(64 * 1024) })).toString("base64");
    const reply = await fetch(`${node.url}/drce`, { method: "POST", body: JSON.stringify({ type: 0, id: 9100, data }) });
    expect(reply.status).toBe(200);
    const [item] = (await reply.json()) as { state: number; error_code: number }[];
    expect(item).toMatchObject({ state: 6, error_code: 100 });

    // Nothing of the refused tasks is left, not even a temp file; the earlier task is intact.
    expect(await tree(tasksDir)).toEqual(filesBefore);
    const lookup = await node.client.getTask({ task: "refused" }).catch((error: unknown) => ConnectError.from(error));
    expect(lookup instanceof ConnectError ? lookup.code : "found").toBe(Code.NotFound);
    const kept = (await node.client.getTask({ task: "before", extended: true })).result!;
    expect(text(kept.stdout)).toBe("kept\n");

    // Space again: the node serves as before.
    await freeDisk();
    const after = (await node.client.submitTask({ task: create(TaskSpecSchema, { id: "after", command: "echo back" }) })).result!;
    expect(after.state).toBe(TaskState.FINISHED);
    expect(text(after.stdout)).toBe("back\n");
  });

  it("ends a task whose output fills the disk with a result, and the node stays up", async () => {
    await freeDisk();
    const r = (await node.client.submitTask({ task: create(TaskSpecSchema, { id: "flood", command: "head -c 8388608 /dev/zero; echo done >&2" }) })).result!;
    // The command ran (state FINISHED; it got SIGPIPE once its output could not be stored),
    // and the result says the output is incomplete: error 100.
    expect(r.state).toBe(TaskState.FINISHED);
    expect(r.errorCode).toBe(100);
    expect(r.errorMessage).toMatch(/storage error while writing stdout \(ENOSPC\); the output is incomplete/);
    expect(r.stdoutSize).toBeLessThan(8_388_608n);
    await rm(join(node.dataDir, "tasks", "flood"), { recursive: true, force: true });
    const next = await until(
      () => node.client.submitTask({ task: create(TaskSpecSchema, { command: "echo alive", mode: TaskMode.SYNC }) }).then((x) => x.result!),
      (x) => x.state === TaskState.FINISHED,
      10_000,
      "a task after the flood",
    );
    expect(text(next.stdout)).toBe("alive\n");
  });
});
