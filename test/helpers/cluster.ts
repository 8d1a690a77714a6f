import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClusterNodeState, NodeService } from "../../gen/drce/v1/node_service_pb.js";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { spawnServe, type ChildNode } from "./child-node.js";

/*
 * A cluster of real `drce serve` processes on loopback: one manager on a fixed free port (so
 * that it can be restarted where its nodes look for it) and data nodes that join it.
 */

/** A data node of a test cluster. */
export interface ClusterMember {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly dataDir: string;
  /** The running process; replaced by {@link TestCluster.restartNode}. */
  child: ChildNode;
  /** A TaskService client of the node itself (not through the manager). */
  tasks: Client<typeof TaskService>;
}

/** A manager and its data nodes, all child processes. */
export interface TestCluster {
  /** The manager's URL (fixed across restarts). */
  readonly url: string;
  /** The manager's process; replaced by {@link TestCluster.restartManager}. */
  manager: ChildNode;
  readonly managerDataDir: string;
  /** TaskService and NodeService clients of the manager. */
  readonly tasks: Client<typeof TaskService>;
  readonly nodes: Client<typeof NodeService>;
  readonly members: ReadonlyMap<string, ClusterMember>;
  /** Starts a node again on its data directory (after a SIGKILL); it joins again on a new port. */
  restartNode(name: string): Promise<void>;
  /** Starts the manager again on its port and data directory (after a SIGKILL). */
  restartManager(): Promise<void>;
  /** Waits until the manager lists every given node in the given state. */
  waitForState(names: readonly string[], state: ClusterNodeState, timeoutMs?: number): Promise<void>;
  /** Stops every process and removes the data directories. */
  stop(): Promise<void>;
}

/** Options of {@link startCluster}. */
export interface TestClusterOptions {
  /** The data nodes: names and labels. */
  readonly nodes: readonly { readonly name: string; readonly labels?: Readonly<Record<string, string>> }[];
  /** Heartbeat interval of every process, ms. */
  readonly heartbeatMs?: number;
  /** Extra flags of the manager. */
  readonly managerFlags?: readonly string[];
}

/** A TCP port free at the time of the call, on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls `probe` until it returns true, failing with `what` after `timeoutMs`. */
export async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 20; ; wait = Math.min(250, wait * 2)) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

const clientOf = <S extends typeof TaskService | typeof NodeService>(service: S, url: string): Client<S> => createClient(service, createConnectTransport({ baseUrl: url, httpVersion: "2" }));

/** Starts a manager and its data nodes (in parallel) and waits until every node is up on the manager. */
export async function startCluster(options: TestClusterOptions): Promise<TestCluster> {
  const heartbeatMs = options.heartbeatMs ?? 300;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const managerDataDir = await mkdtemp(join(tmpdir(), "drce-manager-"));
  const managerArgs = ["--role", "manager", "--name", "manager", "--listen", `127.0.0.1:${port}`, "--data-dir", managerDataDir, "--heartbeat-ms", String(heartbeatMs), ...(options.managerFlags ?? [])];
  const nodeArgs = (member: { name: string; labels: Readonly<Record<string, string>>; dataDir: string }) => [
    "--name",
    member.name,
    "--data-dir",
    member.dataDir,
    "--join",
    url,
    "--heartbeat-ms",
    String(heartbeatMs),
    ...Object.entries(member.labels).flatMap(([key, value]) => ["--label", `${key}=${value}`]),
  ];
  const members = new Map<string, ClusterMember>();
  const started = await Promise.all([
    spawnServe(managerArgs),
    ...options.nodes.map(async (spec) => {
      const dataDir = await mkdtemp(join(tmpdir(), `drce-${spec.name}-`));
      const labels = spec.labels ?? {};
      const child = await spawnServe(nodeArgs({ name: spec.name, labels, dataDir }));
      members.set(spec.name, { name: spec.name, labels, dataDir, child, tasks: clientOf(TaskService, child.url) });
      return child;
    }),
  ]);
  const nodes = clientOf(NodeService, url);
  const cluster: TestCluster = {
    url,
    manager: started[0]!,
    managerDataDir,
    tasks: clientOf(TaskService, url),
    nodes,
    members,
    async restartNode(name) {
      const member = members.get(name)!;
      member.child.kill();
      await member.child.exited;
      member.child = await spawnServe(nodeArgs(member));
      member.tasks = clientOf(TaskService, member.child.url);
    },
    async restartManager() {
      cluster.manager.kill();
      await cluster.manager.exited;
      cluster.manager = await spawnServe(managerArgs);
    },
    async waitForState(names, state, timeoutMs = 30_000) {
      await until(`nodes ${names.join(", ")} in state ${ClusterNodeState[state]}`, async () => {
        try {
          const listed = (await nodes.listNodes({})).nodes;
          return names.every((name) => listed.find((node) => node.name === name)?.state === state);
        } catch {
          // The manager may be restarting.
          return false;
        }
      }, timeoutMs);
    },
    async stop() {
      await Promise.all([cluster.manager, ...[...members.values()].map((member) => member.child)].map(async (child) => {
        if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill("SIGTERM");
        await child.exit(20_000).catch(() => child.kill());
      }));
      await Promise.all([managerDataDir, ...[...members.values()].map((member) => member.dataDir)].map((dir) => rm(dir, { recursive: true, force: true })));
    },
  };
  await cluster.waitForState(options.nodes.map((node) => node.name), ClusterNodeState.UP, 60_000);
  return cluster;
}
