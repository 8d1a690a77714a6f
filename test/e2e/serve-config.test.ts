import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { NodeService } from "../../gen/drce/v1/node_service_pb.js";
import { startDrce } from "../helpers/cli.js";
import { spawnNodeProcess, type NodeProcess } from "../helpers/node-process.js";

/*
 * `drce serve --config FILE` as an operator runs it: a real node process reads the JSON file,
 * its flags override the file, and a bad file stops it before it binds anything, with one
 * line that names the key.
 */

// A node process starts in seconds on a loaded 2-core host.
vi.setConfig({ testTimeout: 120_000 });

let dir = "";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "drce-serve-config-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `drce serve ARGS` to its end with no DRCE_* variable of the caller's. */
async function drceServe(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await startDrce(["serve", ...args], { cleanDrceEnv: true }).done;
  return { code, stdout, stderr };
}

describe("drce serve --config FILE", () => {
  let node: NodeProcess | undefined;
  afterAll(async () => {
    await node?.stop();
  });

  it("serves with the file's options, the flags overriding it", async () => {
    const path = join(dir, "serve.json");
    // The helper's own --listen 127.0.0.1:0 and --data-dir override the file's.
    await writeFile(path, JSON.stringify({ listen: "127.0.0.1:1", name: "from-file", "max-queue": 77, "max-concurrent": "3", "allow-env": ["LD_PRELOAD"], "no-admin-zmq": true }));
    node = await spawnNodeProcess(["--config", path, "--max-concurrent", "5"]);
    const admin = createClient(NodeService, createConnectTransport({ baseUrl: node.url, httpVersion: "2" }));
    const { info } = await admin.getNodeInfo({});
    expect(info).toMatchObject({ name: "from-file", limits: { maxQueue: 77, maxConcurrent: 5, allowedEnv: ["LD_PRELOAD"] } });
    expect(node.url).not.toBe("http://127.0.0.1:1");
    const { result } = await node.client.submitTask({ task: { command: "echo configured" } });
    expect(new TextDecoder().decode(result?.stdout)).toBe("configured\n");
  });

  it("refuses an unknown key or a bad value with one line naming the key, and exits 2", async () => {
    const unknown = join(dir, "unknown.json");
    await writeFile(unknown, JSON.stringify({ "max-queu": 5 }));
    expect(await drceServe(["--config", unknown, "--no-zmq", "--no-admin-zmq"])).toEqual({
      code: 2,
      stdout: "",
      stderr: `drce serve: "max-queu" in ${unknown} is not an option of drce serve (keys are its flags without the dashes; drce serve --help lists them)\n`,
    });
    const bad = join(dir, "bad.json");
    await writeFile(bad, JSON.stringify({ "idle-timeout-ms": "soon" }));
    expect(await drceServe(["--config", bad])).toEqual({ code: 2, stdout: "", stderr: `drce serve: "idle-timeout-ms" in ${bad} must be a non-negative integer, got "soon"\n` });
  });

  it("lists --config in drce serve --help", async () => {
    const help = await drceServe(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^ {2}--config FILE {2,}read options from this JSON file/m);
  });
});
