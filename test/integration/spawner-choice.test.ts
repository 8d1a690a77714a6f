import { create } from "@bufbuild/protobuf";
import { mkdtemp, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TaskSpecSchema } from "../../gen/drce/v1/task_pb.js";
import { allProcesses } from "../helpers/proc.js";
import { spawnNodeProcess, type NodeProcess } from "../helpers/node-process.js";

/*
 * Which spawner a node runs, as a user sees it: the native one, built into its cache when
 * the node starts, and where the node's PATH has no C compiler, the Node.js one, said once
 * in the log. Real `drce serve` processes.
 */

let cache = "";
beforeAll(async () => {
  cache = await mkdtemp(join(tmpdir(), "drce-spawner-cache-"));
});
afterAll(async () => {
  await rm(cache, { recursive: true, force: true });
});
let node: NodeProcess | undefined;
afterEach(async () => {
  await node?.stop();
  node = undefined;
});

const fallbackWarning = "the native spawner cannot be used: tasks are started by the Node.js spawner";

/** Runs one sync task and resolves to the path of the node's spawner's executable. */
async function spawnerExecutable(running: NodeProcess): Promise<string> {
  const reply = await running.client.submitTask({ task: create(TaskSpecSchema, { command: "echo ran" }) });
  expect(Buffer.from(reply.result!.stdout).toString()).toBe("ran\n");
  const spawner = allProcesses().find((process) => process.ppid === running.pid);
  if (spawner === undefined) throw new Error("the node has no spawner");
  return readlink(`/proc/${spawner.pid}/exe`);
}

describe("the spawner a node runs", () => {
  it("is the native one, built into the cache directory, with nothing said about it", async () => {
    node = await spawnNodeProcess([], { XDG_CACHE_HOME: join(cache, "with-cc") });
    expect(await spawnerExecutable(node)).toMatch(new RegExp(`^${join(cache, "with-cc", "drce")}/spawner-[0-9a-f]{16}$`));
    expect(node.log()).not.toContain(fallbackWarning);
  });

  it("is the Node.js one where no C compiler is on the node's PATH, and the log says why, once", async () => {
    node = await spawnNodeProcess([], { XDG_CACHE_HOME: join(cache, "without-cc"), PATH: join(cache, "empty") });
    expect(await spawnerExecutable(node)).toBe(await readlink(`/proc/${node.pid}/exe`));
    await spawnerExecutable(node);
    const warnings = node.log().split("\n").filter((line) => line.includes(fallbackWarning));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0]!)).toMatchObject({ reason: "no C compiler (cc) is on the PATH" });
  });
});
