/*
 * Memory while one large result is served: a node started as `npm start` does (default
 * --max-output-bytes, 256 MiB kept per stream) holds a finished task with SIZE bytes of
 * random stdout, and serves it whole, one way after the other:
 *   1. Connect: FetchTask (at most --inline-output-bytes of it), then StreamTaskOutput of all.
 *   2. Legacy HTTP: POST /drce, get data (the reply carries the whole output in base64).
 *   3. Legacy ZeroMQ: the same request over the gateway's ROUTER.
 *   4. The CLI: `drce fetch --keep` writing all of it to /dev/null (its own peak RSS).
 * For 1-3 it prints the node's RSS growth over its resting RSS at the start of each (peak
 * RSS, reset before each way where the kernel allows, else sampled every 10 ms).
 *
 * Run: node --import tsx bench/large-result.ts [--smoke]   (256 MiB; --smoke: 16 MiB)
 * The last line of stdout is the figures as JSON (bench/run.ts reads it).
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Dealer } from "zeromq";
import { TaskMode, TaskSpecSchema, TaskState } from "../gen/drce/v1/task_pb.js";
import { TaskService } from "../gen/drce/v1/task_service_pb.js";
import { procMemory, resetPeakRss, root, sleep, startBenchNode, type BenchNode } from "./lib.js";

const smoke = process.argv.includes("--smoke") || process.env["BENCH_SMOKE"] === "1";
const MiB = 1024 * 1024;
const size = smoke ? 16 * MiB : 256 * MiB;
const log = (text: string): void => void process.stderr.write(`large-result: ${text}\n`);

/** The figures this script prints, in MiB. */
export interface LargeResultFigures {
  readonly sizeMiB: number;
  readonly restingMiB: number;
  readonly connectGrowthMiB: number;
  readonly legacyHttpGrowthMiB: number;
  readonly legacyZmqGrowthMiB: number;
  readonly cliFetchRssMiB: number;
  /** Bytes each way delivered (a check that the whole output went out). */
  readonly delivered: Readonly<Record<string, number>>;
}

/** Runs one way of serving the result and returns the node's peak RSS growth over its resting RSS, and the bytes delivered. */
async function measure(node: BenchNode, way: () => Promise<number>): Promise<{ growth: number; bytes: number }> {
  // Let the previous way's garbage go before the resting figure is taken.
  await sleep(1500);
  const resting = await procMemory(node.pid, "VmRSS");
  const reset = await resetPeakRss(node.pid);
  let sampled = resting;
  const sampler = setInterval(() => {
    void procMemory(node.pid, "VmRSS").then((rss) => (sampled = Math.max(sampled, rss)), () => undefined); // the node may be gone at the end; the last sample stands
  }, 10);
  try {
    const bytes = await way();
    const peak = reset ? await procMemory(node.pid, "VmHWM") : sampled;
    return { growth: Math.max(0, peak - resting), bytes };
  } finally {
    clearInterval(sampler);
  }
}

const legacyFetch = (id: string): string =>
  JSON.stringify({ type: 3, id: Number(id), data: Buffer.from(JSON.stringify({ type: 0 })).toString("base64") });

/** Reads a legacy HTTP reply to its end, counting its bytes (never holding them). */
function legacyHttp(url: string, id: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request(`${url}/drce`, { method: "POST" }, (response) => {
      let bytes = 0;
      response.on("data", (chunk: Buffer) => (bytes += chunk.length));
      response.on("end", () => resolve(bytes));
      response.on("error", reject);
    });
    request.on("error", reject);
    request.end(legacyFetch(id));
  });
}

async function legacyZmq(endpoint: string, id: string): Promise<number> {
  const socket = new Dealer({ linger: 0, receiveTimeout: 300_000 });
  socket.connect(endpoint);
  try {
    await socket.send(["1", legacyFetch(id)]);
    const [, body] = await socket.receive();
    return body?.length ?? 0;
  } finally {
    socket.close();
  }
}

/**
 * Runs `drce fetch --keep` and returns its peak RSS and the bytes it wrote: GNU time's `%M`
 * where /usr/bin/time exists, else the child's VmHWM sampled every 10 ms.
 */
async function cliFetch(url: string, id: string): Promise<{ rss: number; bytes: number }> {
  const timed = existsSync("/usr/bin/time");
  const drce = [process.execPath, "bin/drce.cjs", "fetch", "--keep", "--server", url, id];
  const child = timed
    ? spawn("/usr/bin/time", ["-f", "%M", ...drce], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
    : spawn(drce[0]!, drce.slice(1), { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  let bytes = 0;
  let stderr = "";
  let sampled = 0;
  child.stdout.on("data", (chunk: Buffer) => (bytes += chunk.length));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const sampler = setInterval(() => {
    if (!timed && child.pid !== undefined) void procMemory(child.pid, "VmHWM").then((rss) => (sampled = Math.max(sampled, rss)), () => undefined); // the child may have exited; the last sample stands
  }, 10);
  const [code] = (await once(child, "exit")) as [number | null];
  clearInterval(sampler);
  if (code !== 0) throw new Error(`drce fetch exited with ${code}: ${stderr}`);
  return { rss: timed ? Number(stderr.trim().split("\n").pop()) * 1024 : sampled, bytes };
}

async function main(): Promise<LargeResultFigures> {
  const dataDir = await mkdtemp(join(tmpdir(), "drce-bench-large-"));
  const node = await startBenchNode({ dataDir });
  try {
    const id = "4242";
    const spec = create(TaskSpecSchema, { id, command: `head -c ${size} /dev/urandom`, mode: TaskMode.ASYNC });
    await node.client.submitTask({ task: spec });
    for (;;) {
      const state = (await node.client.getTask({ task: id })).result?.state;
      if (state === TaskState.FINISHED) break;
      if (state !== TaskState.IN_PROGRESS && state !== TaskState.NEW && state !== TaskState.QUEUED) throw new Error(`the task ended in state ${state}`);
      await sleep(50);
    }
    log(`a task with ${size / MiB} MiB of stdout is finished`);
    // Random bytes do not compress; a client that accepts none keeps the node from trying.
    const raw = createClient(TaskService, createConnectTransport({ baseUrl: node.url, httpVersion: "2", acceptCompression: [] }));
    const resting = await procMemory(node.pid, "VmRSS");

    const connect = await measure(node, async () => {
      const fetched = (await raw.fetchTask({ task: id })).result!;
      let bytes = fetched.stdout.length;
      for await (const m of raw.streamTaskOutput({ task: id, stdoutOffset: BigInt(bytes) })) {
        if (m.event.case === "output") bytes += m.event.value.data.length;
      }
      return bytes;
    });
    log(`Connect: ${connect.bytes} bytes, node +${(connect.growth / MiB).toFixed(1)} MiB`);
    const legacyHttpRun = await measure(node, () => legacyHttp(node.url, id));
    log(`legacy HTTP: ${legacyHttpRun.bytes} bytes, node +${(legacyHttpRun.growth / MiB).toFixed(1)} MiB`);
    const legacyZmqRun = await measure(node, () => legacyZmq(node.zmqEndpoint, id));
    log(`legacy ZeroMQ: ${legacyZmqRun.bytes} bytes, node +${(legacyZmqRun.growth / MiB).toFixed(1)} MiB`);
    const cli = await cliFetch(node.url, id);
    log(`drce fetch: ${cli.bytes} bytes, CLI peak RSS ${(cli.rss / MiB).toFixed(1)} MiB`);
    if (connect.bytes !== size || cli.bytes !== size) throw new Error("a way delivered less than the whole output");
    return {
      sizeMiB: size / MiB,
      restingMiB: resting / MiB,
      connectGrowthMiB: connect.growth / MiB,
      legacyHttpGrowthMiB: legacyHttpRun.growth / MiB,
      legacyZmqGrowthMiB: legacyZmqRun.growth / MiB,
      cliFetchRssMiB: cli.rss / MiB,
      delivered: { connect: connect.bytes, legacyHttp: legacyHttpRun.bytes, legacyZmq: legacyZmqRun.bytes, cliFetch: cli.bytes },
    };
  } finally {
    await node.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

const figures = await main();
console.log(JSON.stringify(figures));
