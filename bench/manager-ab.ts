/*
 * Two managers side by side over the same data node, to tell what a change of the manager
 * buys under whatever load the machine has: one started from another build of drce
 * (`--old-entry PATH`, its bin/drce.js, e.g. an earlier commit unpacked and built with
 * `node bin/build.js`), one from this tree's bundle, both listing one node. Then, task by
 * task in turn (the two managers' order alternating), RunTask of `true` and a sync
 * SubmitTask of `true` to the node directly and through each manager; prints the medians and
 * p90s and what each manager adds at the median.
 *
 * Run: node --import tsx bench/manager-ab.ts --old-entry /path/to/bin/drce.js [--tasks N]   (default 150)
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClusterNodeState, NodeService } from "../gen/drce/v1/node_service_pb.js";
import { TaskMode, TaskSpecSchema, TaskState } from "../gen/drce/v1/task_pb.js";
import { TaskService } from "../gen/drce/v1/task_service_pb.js";
import { quantile, root, sleep, startBenchNode, type BenchNode } from "./lib.js";
const option = (name: string): string | undefined => {
  const at = process.argv.indexOf(name);
  return at === -1 ? undefined : process.argv[at + 1];
};
const oldEntry = option("--old-entry");
if (oldEntry === undefined) throw new Error("usage: bench/manager-ab.ts --old-entry PATH/bin/drce.js [--tasks N]");
const tasks = Number(option("--tasks") ?? 150);
execFileSync(process.execPath, ["bin/build.js"], { cwd: root, stdio: "inherit" });
/** One RunTask of `true`, to the end of its stream, in ms. */
async function runTrue(client: Client<typeof TaskService>): Promise<number> {
  const started = performance.now();
  let state = TaskState.UNSPECIFIED;
  for await (const message of client.runTask({ task: create(TaskSpecSchema, { command: "true" }) })) if (message.event.case === "result") state = message.event.value.state;
  if (state !== TaskState.FINISHED) throw new Error(`RunTask true ended in state ${state}`);
  return performance.now() - started;
}

/** One sync SubmitTask of `true`, to its reply, in ms. */
async function submitTrue(client: Client<typeof TaskService>): Promise<number> {
  const started = performance.now();
  const reply = await client.submitTask({ task: create(TaskSpecSchema, { command: "true", mode: TaskMode.SYNC }) });
  if (reply.result?.state !== TaskState.FINISHED) throw new Error(`SubmitTask true answered state ${reply.result?.state}`);
  return performance.now() - started;
}

/** Polls a manager's node list until its node is up, or fails at the deadline. */
async function waitUp(url: string): Promise<void> {
  const client = createClient(NodeService, createConnectTransport({ baseUrl: url, httpVersion: "2" }));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const nodes = await client.listNodes({}).then((reply) => reply.nodes, () => []); // not answering yet: polled again until the deadline
    if (nodes.some((node) => node.state === ClusterNodeState.UP)) return;
    if (Date.now() > deadline) throw new Error(`the node is not up at ${url} after 60 s`);
    await sleep(100);
  }
}

const work = await mkdtemp(join(tmpdir(), "drce-bench-ab-"));
const started: BenchNode[] = [];
try {
  const node = await startBenchNode({ dataDir: join(work, "node"), args: ["--name", "node-1"] });
  started.push(node);
  const oldM = await startBenchNode({ dataDir: join(work, "old"), entry: [oldEntry], args: ["--name", "m-old", "--role", "manager", "--node", node.url] });
  started.push(oldM);
  const newM = await startBenchNode({ dataDir: join(work, "new"), args: ["--name", "m-new", "--role", "manager", "--node", node.url] });
  started.push(newM);
  await waitUp(oldM.url);
  await waitUp(newM.url);
  const f: Record<string, number[]> = { directRun: [], oldRun: [], newRun: [], directSync: [], oldSync: [], newSync: [] };
  for (let i = 0; i < 20; i++) for (const client of [node.client, oldM.client, newM.client]) await runTrue(client);
  for (let i = 0; i < tasks; i++) {
    // Each manager goes first in every other round, so that neither always follows the node's own call.
    const order = i % 2 === 0 ? ["old", "new"] : ["new", "old"];
    f["directRun"]!.push(await runTrue(node.client));
    for (const o of order) f[`${o}Run`]!.push(await runTrue((o === "old" ? oldM : newM).client));
    f["directSync"]!.push(await submitTrue(node.client));
    for (const o of order) f[`${o}Sync`]!.push(await submitTrue((o === "old" ? oldM : newM).client));
  }
  const med = (k: string) => quantile(f[k]!, 0.5);
  for (const kind of ["Run", "Sync"])
    console.log(`${kind}: direct ${med(`direct${kind}`).toFixed(2)} ms, old manager ${med(`old${kind}`).toFixed(2)} (+${(med(`old${kind}`) - med(`direct${kind}`)).toFixed(2)}), new manager ${med(`new${kind}`).toFixed(2)} (+${(med(`new${kind}`) - med(`direct${kind}`)).toFixed(2)}); p90 direct ${quantile(f[`direct${kind}`]!, 0.9).toFixed(1)} old ${quantile(f[`old${kind}`]!, 0.9).toFixed(1)} new ${quantile(f[`new${kind}`]!, 0.9).toFixed(1)}`);
} finally {
  for (const n of started.reverse()) await n.stop();
  await rm(work, { recursive: true, force: true });
}
