/**
 * What one call costs its caller: N sequential GetTask and N SubmitTask (sync, `true`) to an
 * idle node from the bundle, through drce's client library (createServiceClient, the path the
 * CLI, the library's users and a manager's forwarded calls take) and, in the same run and
 * interleaved by rounds, through connect-node's `createConnectTransport` on HTTP/2. Prints the
 * median latency and the client process's own CPU (user + system) per call of each.
 *
 *   node --import tsx bench/client-call-cost.ts [CALLS]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { TaskMode } from "../gen/drce/v1/task_pb.js";
import { TaskService } from "../gen/drce/v1/task_service_pb.js";
import { createServiceClient } from "../src/client/service-client.js";
import { startBenchNode } from "./lib.js";

const calls = Number(process.argv[2] ?? 400);
const rounds = 4;

type Call = (client: Client<typeof TaskService>, id: string) => Promise<unknown>;

const cases: Readonly<Record<string, Call>> = {
  GetTask: (client, id) => client.getTask({ task: id }),
  "SubmitTask sync true": (client) => client.submitTask({ task: { command: "true", mode: TaskMode.SYNC } }),
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

const dataDir = await mkdtemp(join(tmpdir(), "drce-bench-call-"));
const node = await startBenchNode({ dataDir });
try {
  const drce = createServiceClient(TaskService, { server: node.url, token: "" });
  const connectNode = createClient(TaskService, createConnectTransport({ baseUrl: node.url, httpVersion: "2" }));
  const clients: Readonly<Record<string, Client<typeof TaskService>>> = { "drce transport": drce.client, "connect-node": connectNode };
  const probe = await drce.client.submitTask({ task: { command: "true", mode: TaskMode.SYNC } });
  const id = probe.result?.id ?? "";
  const results = new Map<string, { latencies: number[]; cpuMs: number; count: number }>();
  for (let round = 0; round < rounds; round++) {
    for (const [caseName, call] of Object.entries(cases)) {
      const count = caseName === "GetTask" ? calls : Math.max(20, Math.floor(calls / 8));
      for (const [clientName, client] of Object.entries(clients)) {
        // Warm the connection and the code paths before each measured batch.
        for (let i = 0; i < 20; i++) await call(client, id);
        const key = `${caseName} | ${clientName}`;
        const entry = results.get(key) ?? { latencies: [], cpuMs: 0, count: 0 };
        const cpu = process.cpuUsage();
        for (let i = 0; i < count; i++) {
          const started = performance.now();
          await call(client, id);
          entry.latencies.push(performance.now() - started);
        }
        const used = process.cpuUsage(cpu);
        entry.cpuMs += (used.user + used.system) / 1000;
        entry.count += count;
        results.set(key, entry);
      }
    }
  }
  console.log(`${calls} GetTask and ${Math.max(20, Math.floor(calls / 8))} SubmitTask per round, ${rounds} rounds, one node from the bundle, 127.0.0.1`);
  console.log("call | transport | median ms | client CPU ms per call");
  for (const [key, entry] of results) console.log(`${key} | ${median(entry.latencies).toFixed(3)} | ${(entry.cpuMs / entry.count).toFixed(3)}`);
  drce.close();
} finally {
  await node.stop();
  await rm(dataDir, { recursive: true, force: true });
}
