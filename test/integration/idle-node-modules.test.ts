import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeService } from "../../gen/drce/v1/node_service_pb.js";
import { SessionType, TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { until } from "../helpers/node.js";
import { spawnNodeProcess, type NodeProcess } from "../helpers/node-process.js";

/*
 * An idle node holds only what serving needs: the packages a node uses for some requests
 * only (ssh2 for SSH sessions, systeminformation for host facts) and Node.js's fetch
 * implementation (undici, which its own `Headers` class loads) are loaded when first used.
 * The node is a real `drce serve` process; a preloaded fixture writes what it has loaded.
 */

const preload = fileURLToPath(new URL("../fixtures/loaded-modules.cjs", import.meta.url));

interface Loaded {
  readonly builtins: readonly string[];
  readonly packages: readonly string[];
}

let node: NodeProcess;
let work: string;
let asks = 0;

/** What the node has loaded by now. */
async function loaded(): Promise<Loaded> {
  const file = join(work, `loaded-${++asks}.json`);
  process.kill(node.pid, "SIGUSR2");
  await until(() => existsSync(file), (found) => found, 10_000, "the node's list of loaded modules");
  return JSON.parse(readFileSync(file, "utf8")) as Loaded;
}

const hasPackage = (list: Loaded, name: string): boolean => list.packages.some((file) => file.includes(`/node_modules/${name}/`));
const hasUndici = (list: Loaded): boolean => list.builtins.some((name) => name.includes("undici"));

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "drce-loaded-"));
  node = await spawnNodeProcess([], { DRCE_TEST_LOADED_MODULES: join(work, "loaded") }, ["--require", preload]);
}, 60_000);

afterAll(async () => {
  await node?.stop();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe("an idle node", () => {
  it("has run a task without loading ssh2, systeminformation or undici, and loads each when first used", async () => {
    const ran = await node.client.submitTask({ task: create(TaskSpecSchema, { command: "true", mode: TaskMode.SYNC }) });
    expect(ran.result?.state).toBe(TaskState.FINISHED);
    const idle = await loaded();
    // The list is read from a real process: pino and prom-client are there from the start.
    expect(hasPackage(idle, "pino")).toBe(true);
    expect(hasPackage(idle, "ssh2")).toBe(false);
    expect(hasPackage(idle, "systeminformation")).toBe(false);
    expect(hasUndici(idle)).toBe(false);

    const facts = createClient(NodeService, createConnectTransport({ baseUrl: node.url, httpVersion: "2" }));
    expect((await facts.getHostFacts({})).facts?.cpuCount).toBeGreaterThan(0);
    expect(hasPackage(await loaded(), "systeminformation")).toBe(true);

    // An SSH target that accepts the TCP connection and closes it: the handshake loads ssh2.
    const closer: Server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => closer.listen(0, "127.0.0.1", resolve));
    try {
      const port = (closer.address() as { port: number }).port;
      const session = { type: SessionType.SSH, host: "127.0.0.1", port, user: "nobody", password: "x" };
      await node.client.submitTask({ task: create(TaskSpecSchema, { command: "true", mode: TaskMode.ASYNC, session }) });
      await until(loaded, (list) => hasPackage(list, "ssh2"), 20_000, "ssh2 loaded by the SSH task's handshake");
    } finally {
      closer.close();
    }
  }, 60_000);
});
