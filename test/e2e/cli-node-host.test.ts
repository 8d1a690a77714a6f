import { readFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeService } from "../../gen/drce/v1/node_service_pb.js";
import { runDrce, type CliResult } from "../helpers/cli.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * `drce node host` and GetHostFacts against a real node: the facts are the host's own, as
 * Node.js reads them too.
 */

const version = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

let node: TestNode;

function drce(args: readonly string[]): Promise<CliResult> {
  return runDrce(node.url, args);
}

beforeAll(async () => {
  node = await startNode({ name: "host-facts" });
}, 30_000);

afterAll(async () => {
  await node?.stop();
});

describe("the host's static facts", () => {
  it("come over GetHostFacts as the host's own, and the same on a second call", async () => {
    const client = createClient(NodeService, createConnectTransport({ baseUrl: node.url, httpVersion: "2" }));
    const { facts } = await client.getHostFacts({});
    expect(facts).toBeDefined();
    expect(facts?.drceVersion).toBe(version);
    expect(facts?.nodeVersion).toBe(process.version);
    expect(facts?.platform).toBe(process.platform);
    expect(facts?.kernel).toBe(release());
    expect(facts?.cpuCount).toBe(cpus().length);
    expect(facts?.cpuModel).not.toBe("");
    expect(facts?.memoryBytes).toBe(BigInt(totalmem()));
    for (const disk of facts?.disks ?? []) {
      expect(disk.mount.startsWith("/")).toBe(true);
      expect(disk.sizeBytes).toBeGreaterThan(0n);
    }
    expect((await client.getHostFacts({})).facts).toEqual(facts);
  }, 20_000);

  it("are printed by drce node host, one fact a row, or as JSON", async () => {
    const out = await drce(["node", "host"]);
    expect(out).toMatchObject({ code: 0, stderr: "" });
    const table = new Map(out.stdout.trimEnd().split("\n").map((line) => {
      const [name = "", ...rest] = line.split(/\s{2,}/);
      return [name, rest.join("  ")] as const;
    }));
    expect(table.get("kernel")).toBe(release());
    expect(table.get("cpu-count")).toBe(String(cpus().length));
    expect(table.get("memory-bytes")).toBe(String(totalmem()));
    expect(table.get("drce-version")).toBe(version);
    const json = await drce(["node", "host", "--json"]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ facts: { drceVersion: version, kernel: release(), cpuCount: cpus().length } });
  }, 20_000);

  it("need the token of a node that has one", async () => {
    const guarded = await startNode({ token: "host-facts-secret" });
    try {
      const anonymous = createClient(NodeService, createConnectTransport({ baseUrl: guarded.url, httpVersion: "2" }));
      const refused = await anonymous.getHostFacts({}).then(
        () => "ok",
        (error: unknown) => ConnectError.from(error).code,
      );
      expect(refused).toBe(Code.Unauthenticated);
    } finally {
      await guarded.stop();
    }
  }, 20_000);

  it("take no arguments", async () => {
    const out = await drce(["node", "host", "extra"]);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain("unexpected argument: extra");
  }, 20_000);
});
