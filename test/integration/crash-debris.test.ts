import { create } from "@bufbuild/protobuf";
import { existsSync } from "node:fs";
import { mkdtemp, open, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Stream, TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { decodeTailHeader, tailHeaderBytes, type TailHeader } from "../../src/store/tail-ring.js";
import { spawnServe, type ChildNode } from "../helpers/child-node.js";
import { until } from "../helpers/node.js";

/*
 * What a node killed with SIGKILL leaves in its data directory, and what the next start
 * makes of it: temp files of status writes cut short are removed, and a task that had
 * written past its output cap is served with its head and the tail it kept, in order, with
 * its true size, as if it had finished.
 */

const nodes: ChildNode[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const node of nodes.splice(0)) {
    node.kill();
    await node.exited;
  }
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function serve(dataDir: string, flags: readonly string[] = []): Promise<ChildNode> {
  const node = await spawnServe(["--data-dir", dataDir, "--shutdown-grace", "1000", ...flags]);
  nodes.push(node);
  return node;
}

async function killNode(node: ChildNode): Promise<void> {
  node.kill();
  await node.exited;
  nodes.splice(nodes.indexOf(node), 1);
}

/** The header of a stream's tail ring on disk, or undefined while there is none. */
async function ringHeader(path: string): Promise<TailHeader | undefined> {
  const handle = await open(path, "r").catch(() => undefined); // no ring yet: the output is still within its head
  if (handle === undefined) return undefined;
  try {
    const raw = Buffer.alloc(tailHeaderBytes);
    const { bytesRead } = await handle.read(raw, 0, tailHeaderBytes, 0);
    return bytesRead === tailHeaderBytes ? decodeTailHeader(raw) : undefined;
  } finally {
    await handle.close();
  }
}

/** Bytes that tell every offset apart: the counters 1..count, one a line, as seq prints them. */
const counters = (count: number): Buffer => Buffer.from(Array.from({ length: count }, (_, i) => `${i + 1}\n`).join(""));

// Three node processes start one after the other: a loaded host takes a while for each.
describe("after SIGKILL of the node", { timeout: 120_000 }, () => {
  it("serves a task's kept head and tail in order, with its true size, and leaves no ring or temp file", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "drce-debris-"));
    dirs.push(dataDir);
    const cap = 1024 * 1024;
    const first = await serve(dataDir, ["--max-output-bytes", String(cap)]);
    // stdout passes the cap (2.9 MB); stderr stays within its head.
    const command = "seq 1 400000; echo to-stderr >&2; touch written; exec sleep 60";
    await first.client.submitTask({ task: create(TaskSpecSchema, { id: "big", command, mode: TaskMode.ASYNC }) });
    const taskDir = join(dataDir, "tasks", "big");
    const expected = counters(400_000);
    await until(() => existsSync(join(taskDir, "work", "written")), (done) => done, 30_000, "the command's output written");
    // Every byte is in the ring once its header says the stream is that long, with no write under way.
    await until(() => ringHeader(join(taskDir, "stdout.tail")), (h) => h?.committedTotal === expected.length && h.pendingTotal === h.committedTotal, 30_000, "the output spooled");
    // stderr reaches its spool on its own: its file is complete once it holds the line.
    await until(() => stat(join(taskDir, "stderr")).then((s) => s.size, () => 0), (size) => size === "to-stderr\n".length, 30_000, "stderr spooled"); // no file before its first byte
    await killNode(first);

    // The debris of status writes that a SIGKILL cut short, as atomic writes name their temp files.
    await writeFile(join(taskDir, ".status.json.4242.17.tmp"), '{"id":"big","sta');
    await writeFile(join(taskDir, ".request.json.4242.16.tmp"), "");

    const second = await serve(dataDir, ["--max-output-bytes", String(cap)]);
    const { result } = await second.client.getTask({ task: "big" });
    expect(result?.state).toBe(TaskState.CRASHED);
    expect(result).toMatchObject({ stdoutSize: BigInt(expected.length), stdoutTruncated: true, stderrSize: 10n, stderrTruncated: false });

    const streams: Record<string, Buffer[]> = { stdout: [], stderr: [] };
    for await (const message of second.client.streamTaskOutput({ task: "big" })) {
      if (message.event.case !== "output") continue;
      streams[message.event.value.stream === Stream.STDOUT ? "stdout" : "stderr"]!.push(Buffer.from(message.event.value.data));
    }
    const stdout = Buffer.concat(streams["stdout"]!);
    expect(stdout.length).toBe(cap);
    expect(stdout.subarray(0, cap / 2).equals(expected.subarray(0, cap / 2))).toBe(true);
    expect(stdout.subarray(cap / 2).equals(expected.subarray(expected.length - cap / 2))).toBe(true);
    expect(Buffer.concat(streams["stderr"]!).toString()).toBe("to-stderr\n");

    const left = await readdir(taskDir);
    expect(left.filter((name) => name.endsWith(".tmp") || name.endsWith(".tail"))).toEqual([]);
    expect(left).toContain("status.json");

    // A second restart finds the task final and changes nothing.
    await killNode(second);
    const third = await serve(dataDir, ["--max-output-bytes", String(cap)]);
    expect((await third.client.getTask({ task: "big" })).result).toMatchObject({ state: TaskState.CRASHED, stdoutSize: BigInt(expected.length), stdoutTruncated: true });
  });
});
