import { randomBytes } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeService } from "../../gen/drce/v1/node_service_pb.js";
import { startDrce, type CliResult, type RunningDrce } from "../helpers/cli.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * `drce node ...` as a user runs it: `node bin/drce.cjs` in a child process against a real
 * node on 127.0.0.1:0 that samples the host every 100 ms.
 */

const uid = (prefix: string): string => `${prefix}-${randomBytes(4).toString("hex")}`;

type Outcome = CliResult;

let node: TestNode;

/** Starts `drce ARGS` against the test node, without the caller's token unless `env` gives one. */
function start(args: readonly string[], env: Record<string, string> = {}): RunningDrce {
  return startDrce(args, { server: node.url, env });
}

const drce = (args: readonly string[], env: Record<string, string> = {}): Promise<Outcome> => start(args, env).done;

/** `name value` rows printed by a table command, as a map. */
function rows(stdout: string): Map<string, string> {
  return new Map(stdout.trimEnd().split("\n").map((line) => {
    const [name = "", ...rest] = line.split(/\s{2,}/);
    return [name, rest.join("  ")] as const;
  }));
}

const reportLine = /^\d+\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\t(\d+(\.\d+)?,){7}\d+(\.\d+)?$/;

beforeAll(async () => {
  node = await startNode({ sampleIntervalMs: 100, name: "cli-node", maxQueue: 1234 });
}, 30_000);

afterAll(async () => {
  await node?.stop();
});

describe("drce node", () => {
  it("info shows the node's identity and limits, or its reply as JSON", async () => {
    const out = await drce(["node", "info"]);
    expect(out).toMatchObject({ code: 0, stderr: "" });
    const table = rows(out.stdout);
    expect(table.get("name")).toBe("cli-node");
    expect(table.get("role")).toBe("data");
    expect(table.get("port")).toBe(new URL(node.url).port);
    expect(table.get("max-queue")).toBe("1234");
    expect(table.get("sample-interval-ms")).toBe("100");
    expect(table.get("token-required")).toBe("no");
    const json = await drce(["node", "info", "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ info: { name: "cli-node", role: "data", limits: { maxQueue: 1234 } } });
  });

  it("usage shows the eight figures and the balancing string", async () => {
    const out = await drce(["node", "usage"]);
    expect(out.code).toBe(0);
    const table = rows(out.stdout);
    const names = ["CPU", "IOWAIT", "VRAM", "RRAM", "DISK", "PROCESSES", "THREADS", "LOADAVG"];
    for (const name of names) expect(Number(table.get(name))).toBeGreaterThanOrEqual(0);
    expect(table.get("balancing")!.split(",").map(Number)).toEqual(names.map((n) => Number(table.get(n))));
    const json = JSON.parse((await drce(["node", "usage", "--json"])).stdout) as { balancing: string; usage: { rram: number } };
    expect(json.balancing.split(",")).toHaveLength(8);
    expect(json.usage.rram).toBeGreaterThan(0);
  });

  it("stats counts the tasks drce ran, with their failures", async () => {
    expect((await drce(["submit", "--sync", "--", "echo", "fine"])).code).toBe(0);
    expect((await drce(["submit", "--sync", "--", "sh", "-c", "exit 2"])).code).toBe(2);
    // An attached run is an async task that the caller follows.
    expect((await drce(["run", "-c", "exit 3"])).code).toBe(3);
    expect((await drce(["submit", "--id", uid("async"), "--", "true"])).code).toBe(0);
    const admin = createClient(NodeService, createConnectTransport({ baseUrl: node.url, httpVersion: "2" }));
    await until(async () => (await admin.getNodeStats({})).stats!, (s) => s.sync!.tasks === 2n && s.async!.tasks === 2n, 15_000, "the four tasks counted");
    const json = JSON.parse((await drce(["node", "stats", "--json"])).stdout) as { stats: { sync: { tasks: string; failed: string } } };
    expect(json.stats.sync).toMatchObject({ tasks: "2", failed: "1" });
    const out = await drce(["node", "stats"]);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^since \d{4}-/);
    expect(out.stdout).toMatch(/^sync\s+2\s+1$/m);
    expect(out.stdout).toMatch(/^async\s+2\s+1$/m);
    expect(out.stdout).toMatch(/^time-ms\s+sync\s+\S+\s+\S+\s+\S+\s+2$/m);
    expect(out.stdout).toMatch(/^per-minute\s+async\s/m);
  }, 90_000);

  it("tasks prints each task's id, modification time and stored status", async () => {
    const id = uid("info");
    expect((await drce(["run", "--id", id, "-c", "echo hi"])).code).toBe(0);
    const out = await drce(["node", "tasks", "--state", "finished"]);
    expect(out.code).toBe(0);
    const line = out.stdout.split("\n").find((l) => l.startsWith(`${id}\t`));
    expect(line).toBeDefined();
    const [, modified, info] = line!.split("\t");
    expect(modified).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(JSON.parse(info!)).toMatchObject({ id, state: 0, exitStatus: 0 });
    const running = await drce(["node", "tasks", "--state", "running"]);
    expect(running.stdout).not.toContain(id);
    const json = JSON.parse((await drce(["node", "tasks", "--json"])).stdout) as { tasks: { id: string }[] };
    expect(json.tasks.some((t) => t.id === id)).toBe(true);
  }, 60_000);

  it("reports prints the kept reports and exits; --after resumes after one", async () => {
    await until(() => node.app.reports.lastSeq, (seq) => seq >= 3, 15_000, "three reports");
    const out = await drce(["node", "reports"]);
    expect(out.code).toBe(0);
    const lines = out.stdout.trimEnd().split("\n");
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines) expect(line).toMatch(reportLine);
    const seqs = lines.map((l) => Number(l.split("\t")[0]));
    expect(seqs.slice(1).every((s, i) => s === seqs[i]! + 1)).toBe(true);
    const after = await drce(["node", "reports", "--after", String(seqs[1])]);
    expect(Number(after.stdout.split("\t")[0])).toBe(seqs[2]);
  });

  it("reports -f follows new reports until stopped", async () => {
    const first = node.app.reports.lastSeq;
    const follow = start(["node", "reports", "-f", "--after", String(first)]);
    try {
      const text = await until(() => follow.stdout(), (t) => t.split("\n").length > 3, 15_000, "three followed reports");
      const lines = text.split("\n").filter((l) => l !== "");
      for (const line of lines) expect(line).toMatch(reportLine);
      expect(Number(lines[0]!.split("\t")[0])).toBe(first + 1);
    } finally {
      follow.child.kill("SIGTERM");
      await follow.done;
    }
  });

  it("has help, and refuses unknown subcommands and misplaced options", async () => {
    expect((await drce(["help", "node"])).stdout).toMatch(/^usage: drce node /);
    expect((await drce(["node", "--help"])).code).toBe(0);
    expect((await drce(["help"])).stdout).toMatch(/^ {2}node /m);
    const unknown = await drce(["node", "reboot"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown subcommand "reboot"/);
    expect((await drce(["node"])).code).toBe(2);
    expect((await drce(["node", "info", "-f"])).code).toBe(2);
    expect((await drce(["node", "reports", "--after", "x"])).code).toBe(2);
  }, 90_000);

  it("sends $DRCE_TOKEN to a node that requires one", async () => {
    const guarded = await startNode({ token: "cli-node-token" });
    try {
      const anonymous = await drce(["node", "info", "--server", guarded.url]);
      expect(anonymous.code).toBe(125);
      expect(anonymous.stderr).toMatch(/unauthenticated/);
      const authorized = await drce(["node", "info", "--server", guarded.url], { DRCE_TOKEN: "cli-node-token" });
      expect(authorized.code).toBe(0);
      expect(rows(authorized.stdout).get("token-required")).toBe("yes");
    } finally {
      await guarded.stop();
    }
  });
});
