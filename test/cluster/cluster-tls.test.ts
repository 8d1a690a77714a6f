import { rm } from "node:fs/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterNodeState, NodeService } from "../../gen/drce/v1/node_service_pb.js";
import { PlacementMode } from "../../gen/drce/v1/task_pb.js";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { ConfigError, parseServeConfig } from "../../src/config.js";
import { ErrorCode } from "../../src/domain/errors.js";
import { startNode, until, type TestNode } from "../helpers/node.js";
import { makeTestPki, type TestPki } from "../security/certs.js";
import { clientFor } from "../security/clients.js";

/*
 * A cluster over TLS, in this process: a data node that requires client certificates
 * (--tls-client-ca), polled by a manager holding the cluster's CA and client certificate,
 * and by one that holds neither; and a data node joining an https:// manager.
 */

const token = "cluster-secret";
let pki: TestPki;
let mtlsNode: TestNode;
let manager: TestNode;
let bare: TestNode;

beforeAll(async () => {
  pki = makeTestPki();
  mtlsNode = await startNode({ name: "secure-1", token, tlsCert: pki.serverCert, tlsKey: pki.serverKey, tlsClientCa: pki.ca });
  manager = await startNode({ role: "manager", name: "manager", token, heartbeatMs: 200, nodes: [mtlsNode.url], clusterCa: pki.ca, clusterCert: pki.clientCert, clusterKey: pki.clientKey });
  bare = await startNode({ role: "manager", name: "bare", token, heartbeatMs: 200, nodes: [mtlsNode.url] });
});

afterAll(async () => {
  await Promise.all([manager, bare, mtlsNode].map((node) => node?.stop()));
  if (pki !== undefined) await rm(pki.dir, { recursive: true, force: true });
});

const authorized = { headers: { authorization: `Bearer ${token}` } };

describe("a manager in front of an mTLS data node", () => {
  it("with --cluster-ca, --cluster-cert and --cluster-key polls the node and runs a task on it", async () => {
    const nodes = clientFor(NodeService, manager.url, { token });
    const tasks = clientFor(TaskService, manager.url, { token });
    try {
      await until(async () => (await nodes.client.listNodes({})).nodes, (items) => items.some((item) => item.name === "secure-1" && item.state === ClusterNodeState.UP), 20_000, "the mTLS node to be polled");
      const { result } = await tasks.client.submitTask({ task: { command: "echo through-mtls", placement: { mode: PlacementMode.ALL, nodes: ["secure-1"] } } }, authorized);
      expect(result?.nodes.map((item) => [item.node, Buffer.from(item.result!.stdout).toString()])).toEqual([["secure-1", "through-mtls\n"]]);
    } finally {
      nodes.close();
      tasks.close();
    }
  });

  it("without them never reaches the node: no node is up and a task finds no target (5000)", async () => {
    const tasks = clientFor(TaskService, bare.url, { token });
    const nodes = clientFor(NodeService, bare.url, { token });
    const other = clientFor(NodeService, manager.url, { token });
    try {
      // The same node is up for the manager holding the certificate, so a poll has had its time.
      await until(async () => (await other.client.listNodes({})).nodes, (items) => items.some((item) => item.state === ClusterNodeState.UP), 20_000, "the other manager to see the node");
      expect((await nodes.client.listNodes({})).nodes.filter((item) => item.state === ClusterNodeState.UP)).toEqual([]);
      const failure = await tasks.client.submitTask({ task: { command: "true" } }, authorized).then(() => undefined, (error: unknown) => ConnectError.from(error));
      expect(failure?.code).toBe(Code.Unavailable);
      expect(Number(failure?.metadata.get("drce-error-code"))).toBe(ErrorCode.NoTargetNode);
    } finally {
      tasks.close();
      nodes.close();
      other.close();
    }
  });
});

describe("a data node joining an https:// manager", () => {
  it("trusts the manager's certificate through --cluster-ca and joins", async () => {
    const secureManager = await startNode({ role: "manager", name: "tls-manager", token, heartbeatMs: 200, tlsCert: pki.serverCert, tlsKey: pki.serverKey });
    const joiner = await startNode({ name: "tls-joiner", token, join: secureManager.url, heartbeatMs: 200, clusterCa: pki.ca });
    const nodes = clientFor(NodeService, secureManager.url, { token, tls: { ca: pki.read(pki.ca) } });
    try {
      await until(async () => (await nodes.client.listNodes({})).nodes, (items) => items.some((item) => item.name === "tls-joiner" && item.state === ClusterNodeState.UP), 20_000, "the node to join over TLS");
    } finally {
      nodes.close();
      await joiner.stop();
      await secureManager.stop();
    }
  });
});

describe("the cluster TLS flags", () => {
  it("take --cluster-cert and --cluster-key together, and fail the start on a file that cannot be read", async () => {
    expect(() => parseServeConfig(["--cluster-cert", "/tmp/c.pem"], {})).toThrow(/--cluster-cert and --cluster-key go together/);
    const started = startNode({ role: "manager", name: "unreadable", token, clusterCa: "/nonexistent/ca.pem" });
    await expect(started).rejects.toThrow(ConfigError);
    await expect(started).rejects.toThrow(/--cluster-ca \/nonexistent\/ca.pem: ENOENT/);
  });
});
