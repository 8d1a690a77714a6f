import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { createApp, type App } from "../../src/app.js";
import { defaultConfig, type Config } from "../../src/config.js";

/** A node started for a test on a random loopback port, with its own data directory. */
export interface TestNode {
  readonly app: App;
  readonly url: string;
  readonly zmqEndpoint: string;
  /** The legacy ZeroMQ admin endpoint; empty unless the test asked for one (adminZmqListen). */
  readonly adminZmqEndpoint: string;
  readonly dataDir: string;
  readonly client: Client<typeof TaskService>;
  stop(): Promise<void>;
}

/** Starts a node on 127.0.0.1:0 with a fresh data directory (or the one given). */
export async function startNode(overrides: Partial<Config> = {}): Promise<TestNode> {
  const dataDir = overrides.dataDir ?? (await mkdtemp(join(tmpdir(), "drce-test-")));
  const config: Config = { ...defaultConfig(), listen: "127.0.0.1:0", zmqListen: "", adminZmqListen: "", logLevel: "silent", shutdownGraceMs: 3000, ...overrides, dataDir };
  const app = await createApp(config);
  const { url, zmqEndpoint, adminZmqEndpoint } = await app.listen();
  const transport = createConnectTransport({ baseUrl: url, httpVersion: "2" });
  return {
    app,
    url,
    zmqEndpoint,
    adminZmqEndpoint,
    dataDir,
    client: createClient(TaskService, transport),
    async stop() {
      await app.close();
      if (overrides.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls a condition until it holds or the deadline passes; returns the last value. */
export async function until<T>(probe: () => Promise<T> | T, accept: (value: T) => boolean, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await probe();
    if (accept(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last, (_k, v) => (typeof v === "bigint" ? String(v) : v))}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
