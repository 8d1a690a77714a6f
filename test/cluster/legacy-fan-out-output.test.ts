import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, until, type TestCluster } from "../helpers/cluster.js";
import { memoryOf, resetPeakMemory } from "../helpers/node-process.js";

/*
 * A manager and three data nodes as real processes; a legacy caller (POST /drce) fans a task
 * out whose output is 64 MiB of random bytes on each node. The reply carries every node's
 * whole output, read from the nodes while it is sent: the manager's memory does not grow
 * with it; then the same for a task placed on one node. The test reads the replies as
 * streams too (the first is over 256 MiB of JSON).
 */

const MiB = 1024 * 1024;
/**
 * Growth of the manager's peak RSS allowed while it sends a reply: less than the 192 MiB the
 * three outputs make (the reply itself is 256 MiB), so that holding them whole cannot pass.
 * The first large reply grows the manager's heap once (the garbage of its chunks between two
 * collections, 100-140 MiB measured); a second one mostly reuses it (10-60 MiB measured, the
 * more the busier the machine) and is held to a tighter bound.
 */
const firstGrowthBound = 192 * MiB;
const againGrowthBound = 128 * MiB;
/** Growth allowed for a one-node reply of 128 MiB once the heap has grown: less than the output, which a reply gathered first would hold twice over. */
const oneNodeGrowthBound = 96 * MiB;
let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster({ heartbeatMs: 1000, nodes: [{ name: "n1" }, { name: "n2" }, { name: "n3" }] });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

interface Item {
  id: number;
  node: string;
  state: number;
  error_code: number;
  stdout: string;
  stderr: string;
}

/** A legacy message, its data base64 JSON, with an optional route in the body. */
const message = (type: number, id: number, data: object, route?: object): string => JSON.stringify({ type, id, data: Buffer.from(JSON.stringify(data)).toString("base64"), ...(route === undefined ? {} : { route }) });

/**
 * Reads a legacy reply as it comes: the items without their stdout (parsed at the end), and
 * each item's stdout decoded and hashed on the way, never held whole.
 */
async function streamedReply(res: Response): Promise<{ items: Item[]; stdout: { bytes: number; sha256: string }[]; length: number; declared: number }> {
  const marker = '"stdout":"';
  const decoder = new TextDecoder();
  const stdout: { bytes: number; sha256: string }[] = [];
  let skeleton = "";
  let searchFrom = 0;
  let inside: { hash: ReturnType<typeof createHash>; bytes: number; carry: string } | undefined;
  let length = 0;
  const feed = (text: string): void => {
    while (text !== "") {
      if (inside === undefined) {
        skeleton += text;
        text = "";
        const at = skeleton.indexOf(marker, searchFrom);
        if (at < 0) {
          searchFrom = Math.max(0, skeleton.length - marker.length);
          return;
        }
        text = skeleton.slice(at + marker.length);
        skeleton = skeleton.slice(0, at + marker.length);
        inside = { hash: createHash("sha256"), bytes: 0, carry: "" };
        continue;
      }
      const end = text.indexOf('"');
      const b64 = inside.carry + (end < 0 ? text : text.slice(0, end));
      const whole = end < 0 ? b64.length - (b64.length % 4) : b64.length;
      const bytes = Buffer.from(b64.slice(0, whole), "base64");
      inside.hash.update(bytes);
      inside.bytes += bytes.length;
      inside.carry = b64.slice(whole);
      if (end < 0) return;
      stdout.push({ bytes: inside.bytes, sha256: inside.hash.digest("hex") });
      inside = undefined;
      searchFrom = skeleton.length;
      text = text.slice(end);
    }
  };
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    length += chunk.length;
    feed(decoder.decode(chunk, { stream: true }));
  }
  feed(decoder.decode());
  return { items: JSON.parse(skeleton) as Item[], stdout, length, declared: Number(res.headers.get("content-length")) };
}

/** Sends a legacy message to the manager and reads its reply as a stream, with the manager's peak RSS growth meanwhile. */
async function measured(body: string): Promise<Awaited<ReturnType<typeof streamedReply>> & { growth: number }> {
  const pid = cluster.manager.proc.pid!;
  resetPeakMemory(pid);
  const before = memoryOf(pid).rss;
  const res = await fetch(`${cluster.url}/drce`, { method: "POST", body });
  const reply = await streamedReply(res);
  return { ...reply, growth: memoryOf(pid).peak - before };
}

describe("a legacy fan-out reply of 3 × 64 MiB through a manager", () => {
  it("carries every node's whole output, read from the nodes as it is sent, in a sync set and then in a fetch that deletes the task once sent", { timeout: 300_000 }, async () => {
    const command = `head -c ${64 * MiB} /dev/urandom > data.bin && cat data.bin && sha256sum data.bin | cut -d ' ' -f 1 >&2`;
    const set = await measured(message(0, 7301, { session: { tmode: 1 }, command }, { role: 0 }));
    console.log(`legacy sync set, 3 nodes × 64 MiB: reply ${(set.length / MiB).toFixed(1)} MiB; manager RSS +${(set.growth / MiB).toFixed(1)} MiB at peak`);
    expect(set.declared).toBe(set.length);
    expect(set.items.map((item) => [item.node, item.state, item.error_code])).toEqual([
      ["n1", 0, 0],
      ["n2", 0, 0],
      ["n3", 0, 0],
    ]);
    const digests = set.items.map((item) => Buffer.from(item.stderr, "base64").toString().trim());
    expect(new Set(digests).size).toBe(3);
    expect(set.stdout).toEqual(digests.map((sha256) => ({ bytes: 64 * MiB, sha256 })));
    expect(set.growth).toBeLessThan(firstGrowthBound);

    // Fetch with delete (data type 1): the same outputs, then the task is gone from the nodes and the manager.
    const fetched = await measured(message(3, 7301, { type: 1 }));
    console.log(`legacy fetch, 3 nodes × 64 MiB: manager RSS +${(fetched.growth / MiB).toFixed(1)} MiB at peak`);
    expect(fetched.declared).toBe(fetched.length);
    expect(fetched.items.map((item) => item.node)).toEqual(["n1", "n2", "n3"]);
    expect(fetched.stdout).toEqual(digests.map((sha256) => ({ bytes: 64 * MiB, sha256 })));
    expect(fetched.growth).toBeLessThan(againGrowthBound);
    await until("the fetched task to be deleted on every node", async () => {
      for (const member of cluster.members.values()) if ((await member.tasks.listTasks({})).tasks.some((task) => task.id === "7301")) return false;
      return true;
    });
    // Its placement is removed (a removal's entry file goes with it): the manager's check says "not found".
    const check = async (): Promise<unknown> => (await fetch(`${cluster.url}/drce`, { method: "POST", body: message(1, 7301, { type: 0 }) })).json();
    await until("its placement to be removed", async () => ((await check()) as { state?: number }[])[0]?.state === 3);
    expect(await check()).toMatchObject([{ id: 7301, state: 3, error_code: 0 }]);
    expect(existsSync(join(cluster.managerDataDir, "cluster", "placements", "7301.json"))).toBe(false);
  });
});

describe("a legacy reply of a task placed on one node, 128 MiB through a manager, after that", () => {
  it("carries the whole output, read from the node as it is sent, in a sync set and in a fetch that deletes the task once sent", { timeout: 300_000 }, async () => {
    const command = `head -c ${128 * MiB} /dev/urandom > data.bin && cat data.bin && sha256sum data.bin | cut -d ' ' -f 1 >&2`;
    const set = await measured(message(0, 7300, { session: { tmode: 1 }, command }, { role: 1, nodes: ["n2"] }));
    console.log(`legacy sync set on one node, 128 MiB: reply ${(set.length / MiB).toFixed(1)} MiB; manager RSS +${(set.growth / MiB).toFixed(1)} MiB at peak`);
    expect(set.declared).toBe(set.length);
    expect(set.items.map((item) => [item.node, item.state, item.error_code])).toEqual([["n2", 0, 0]]);
    const digest = Buffer.from(set.items[0]!.stderr, "base64").toString().trim();
    expect(set.stdout).toEqual([{ bytes: 128 * MiB, sha256: digest }]);
    expect(set.growth).toBeLessThan(oneNodeGrowthBound);

    const fetched = await measured(message(3, 7300, { type: 1 }));
    console.log(`legacy fetch on one node, 128 MiB: manager RSS +${(fetched.growth / MiB).toFixed(1)} MiB at peak`);
    expect(fetched.declared).toBe(fetched.length);
    expect(fetched.stdout).toEqual([{ bytes: 128 * MiB, sha256: digest }]);
    expect(fetched.growth).toBeLessThan(oneNodeGrowthBound);
    await until("the fetched task to be deleted on its node", async () => !(await cluster.members.get("n2")!.tasks.listTasks({})).tasks.some((task) => task.id === "7300"));
    // Its placement is removed (a removal's entry file goes with it): the manager's check says "not found".
    const check = async (): Promise<unknown> => (await fetch(`${cluster.url}/drce`, { method: "POST", body: message(1, 7300, { type: 0 }) })).json();
    await until("its placement to be removed", async () => ((await check()) as { state?: number }[])[0]?.state === 3);
    expect(await check()).toMatchObject([{ id: 7300, state: 3, error_code: 0 }]);
    expect(existsSync(join(cluster.managerDataDir, "cluster", "placements", "7300.json"))).toBe(false);
  });
});

describe("a legacy reply through a manager whose node dies while it is sent", () => {
  it("breaks off short of its Content-Length, never ends as a short valid reply, and the manager answers on", { timeout: 300_000 }, async () => {
    const command = `head -c ${64 * MiB} /dev/urandom`;
    const set = await measured(message(0, 7302, { session: { tmode: 1 }, command }, { role: 1, nodes: ["n3"] }));
    expect(set.stdout.map((item) => item.bytes)).toEqual([64 * MiB]);

    // A fetch read slowly: the manager reads the node's output as the caller takes the reply, so most of it is still on the node.
    const res = await fetch(`${cluster.url}/drce`, { method: "POST", body: message(3, 7302, { type: 0 }) });
    const declared = Number(res.headers.get("content-length"));
    expect(declared).toBeGreaterThan(64 * MiB);
    const reader = res.body!.getReader();
    let received = 0;
    while (received < MiB) received += (await reader.read()).value?.length ?? 0;
    const member = cluster.members.get("n3")!;
    member.child.kill();
    await member.child.exited;
    let broke = false;
    try {
      for (let next = await reader.read(); next.done !== true; next = await reader.read()) received += next.value.length;
    } catch {
      broke = true;
    }
    expect(broke).toBe(true);
    expect(received).toBeLessThan(declared);
    // The manager itself is unharmed: it answers for the task, naming the node that is gone.
    const [item] = (await (await fetch(`${cluster.url}/drce`, { method: "POST", body: message(1, 7302, { type: 0 }) })).json()) as Item[];
    expect(item).toMatchObject({ id: 7302, error_code: 5000 });
  });
});
