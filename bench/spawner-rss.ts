// The resident memory of an idle node and its spawner, with each spawner: a node (the compiled
// bundle) is started, runs one sync `true` task (which starts its spawner), and is left idle
// for a second; then the RSS of the node and of its spawner are read from /proc. The Node.js
// spawner (DRCE_SPAWNER=node) and the native one alternate, ROUNDS times each, and the
// medians are printed.
// Usage: node --import tsx bench/spawner-rss.ts [ROUNDS]
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { TaskSpecSchema } from "../gen/drce/v1/task_pb.js";
import { procMemory, startBenchNode } from "./lib.js";

const rounds = Number(process.argv[2] ?? 3);
const kinds = ["node", "native"] as const;

/** The node's child that is its spawner (Node.js: spawner-main; native: spawner-HASH). */
async function spawnerOf(nodePid: number): Promise<number | undefined> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "latin1").catch(() => "");
    if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) !== nodePid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "latin1").catch(() => "");
    if (cmdline.includes("spawner-main") || /\/spawner-[0-9a-f]{16}\0/.test(cmdline)) return Number(entry);
  }
  return undefined;
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const figures: Record<string, { node: number[]; spawner: number[] }> = Object.fromEntries(kinds.map((kind) => [kind, { node: [], spawner: [] }]));
for (let round = 0; round < rounds; round++) {
  for (const kind of kinds) {
    // The node inherits this process's environment: the variable chooses its spawner.
    process.env["DRCE_SPAWNER"] = kind === "node" ? "node" : "auto";
    const work = await mkdtemp(join(tmpdir(), "drce-rss-"));
    const node = await startBenchNode({ dataDir: join(work, "data") });
    try {
      await node.client.submitTask({ task: create(TaskSpecSchema, { command: "true" }) });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const spawner = await spawnerOf(node.pid);
      if (spawner === undefined) throw new Error(`no spawner found under node ${node.pid}`);
      figures[kind]!.node.push((await procMemory(node.pid, "VmRSS")) / 2 ** 20);
      figures[kind]!.spawner.push((await procMemory(spawner, "VmRSS")) / 2 ** 20);
    } finally {
      await node.stop();
      await rm(work, { recursive: true, force: true });
    }
  }
}
for (const kind of kinds) {
  const { node, spawner } = figures[kind]!;
  console.log(`${kind.padEnd(7)} spawner: idle node ${median(node).toFixed(1)} MiB, spawner ${median(spawner).toFixed(1)} MiB, together ${(median(node) + median(spawner)).toFixed(1)} MiB (medians of ${rounds})`);
}
