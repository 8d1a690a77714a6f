import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { NodeService } from "../../gen/drce/v1/node_service_pb.js";
import { createDirectTransport, type FleetTransport } from "../../src/cluster/fleet-transport.js";
import { createMembership, type Membership } from "../../src/cluster/membership.js";
import { createLogger } from "../../src/logger.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * A manager's polls of a listed data node over a real node: one ListNodes per poll carries
 * the node's usage and balancing string, so no GetResourceUsage is made; a listed node that
 * answers ListNodes for other nodes (a manager) is asked for its own usage as before.
 */

type NodeClient = Client<typeof NodeService>;

let node: TestNode;
let dir: string;
let members: Membership | undefined;
let inner: FleetTransport | undefined;

/** A direct transport whose NodeService calls are counted by method, the answers optionally rewritten. */
function countingTransport(calls: Map<string, number>, rewrite?: (method: string, answer: unknown) => unknown): FleetTransport {
  inner = createDirectTransport({ token: "" });
  const real = inner;
  return {
    ...real,
    tasks: (address) => real.tasks(address),
    delivery: (error) => real.delivery(error),
    forget: (name) => real.forget(name),
    close: () => real.close(),
    nodes(address) {
      const client = real.nodes(address);
      return new Proxy(client, {
        get(target, method: string) {
          const call = target[method as keyof NodeClient] as (...args: unknown[]) => Promise<unknown>;
          return async (...args: unknown[]) => {
            calls.set(method, (calls.get(method) ?? 0) + 1);
            const answer = await call.apply(target, args);
            return rewrite === undefined ? answer : rewrite(method, answer);
          };
        },
      });
    },
  };
}

beforeAll(async () => {
  node = await startNode({ name: "polled" });
  dir = await mkdtemp(join(tmpdir(), "drce-membership-poll-"));
}, 60_000);

afterEach(async () => {
  await members?.close();
  members = undefined;
  inner?.close();
  inner = undefined;
});

afterAll(async () => {
  await node?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("a manager's poll of a listed data node", () => {
  it("reads the node's usage and balancing from one ListNodes, without a GetResourceUsage", async () => {
    const calls = new Map<string, number>();
    members = createMembership({ dataDir: join(dir, "one-call"), listed: [node.url], heartbeatMs: 250, nodeTimeoutMs: 60_000, transport: countingTransport(calls), logger: createLogger("silent") });
    await members.start();
    await until(() => calls.get("listNodes") ?? 0, (count) => count >= 4, 20_000, "four polls");
    const member = await until(() => members?.get("polled"), (found) => found?.state === "up" && found.facts !== undefined, 20_000, "the node to be up with its facts");
    expect(calls.get("getResourceUsage") ?? 0).toBe(0);
    // The figures are the node's own: a balancing string of eight figures, memory in use.
    expect(member!.balancing.split(",")).toHaveLength(8);
    expect(member!.usage.rram).toBeGreaterThan(0);
    expect(member!.balancing.split(",")[3]).toBe(String(member!.usage.rram));
  }, 30_000);

  it("asks a node that answers ListNodes for others for its own usage", async () => {
    const calls = new Map<string, number>();
    const asManager = (method: string, answer: unknown): unknown => {
      if (method !== "listNodes") return answer;
      const list = answer as { nodes: { name: string }[] };
      return { ...list, nodes: list.nodes.map((item) => ({ ...item, name: "someone-else" })) };
    };
    members = createMembership({ dataDir: join(dir, "for-others"), listed: [node.url], heartbeatMs: 250, nodeTimeoutMs: 60_000, transport: countingTransport(calls, asManager), logger: createLogger("silent") });
    await members.start();
    await until(() => calls.get("getResourceUsage") ?? 0, (count) => count >= 2, 20_000, "two usage calls");
    const member = await until(() => members?.get("polled"), (found) => found?.state === "up", 20_000, "the node to be up");
    expect(calls.get("getResourceUsage")).toBeGreaterThanOrEqual(2);
    expect(member!.balancing.split(",")).toHaveLength(8);
    expect(member!.usage.rram).toBeGreaterThan(0);
  }, 30_000);
});
