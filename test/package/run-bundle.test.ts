import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runToEnd, type ProcessOutcome } from "../helpers/run-to-end.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * `drce run` has a compiled file of its own, dist/drce-run.cjs, loaded with its own code cache;
 * the other client commands keep dist/drce-client.cjs. Built by bin/build.js in a copy of the
 * checkout (so that this checkout's dist/ is left alone), then run with a preload that reports
 * which files of dist/ the command read and whether V8 took their code caches.
 */

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const preload = fileURLToPath(new URL("../fixtures/cli-start-report.cjs", import.meta.url));

interface StartReport {
  readonly read: string[];
  readonly scripts: { file: string; cached: boolean; rejected: boolean }[];
}

let checkout: string;
let node: TestNode;
let reports = 0;

/** Runs a process to its end, in the copy, and resolves with its exit code and output. */
function run(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<ProcessOutcome> {
  return runToEnd(argv, { cwd: checkout, env });
}

/** Runs the copy's drce with the arguments against the test's node, with the start report. */
async function drce(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; report: StartReport }> {
  const file = join(checkout, `report-${++reports}.json`);
  const env: NodeJS.ProcessEnv = { ...process.env, DRCE_SERVER: node.url, DRCE_TEST_START_REPORT: file };
  delete env["DRCE_TOKEN"];
  const result = await run([process.execPath, "--require", preload, join(checkout, "bin/drce.cjs"), ...args], env);
  return { ...result, report: JSON.parse(readFileSync(file, "utf8")) as StartReport };
}

beforeAll(async () => {
  checkout = mkdtempSync(join(tmpdir(), "drce-run-bundle-"));
  for (const entry of ["bin", "src", "gen", "ui", "package.json", "tsconfig.json"]) cpSync(join(repoRoot, entry), join(checkout, entry), { recursive: true });
  symlinkSync(join(repoRoot, "node_modules"), join(checkout, "node_modules"));
  const built = await run([process.execPath, "bin/build.js"]);
  expect(built.code, built.stderr).toBe(0);
  node = await startNode();
}, 120_000);

afterAll(async () => {
  await node?.stop();
  rmSync(checkout, { recursive: true, force: true });
});

describe("the run command's own bundle", () => {
  it("is built beside the client commands' bundle, with its own code cache, and without the other commands", () => {
    const dist = readdirSync(join(checkout, "dist"));
    expect(dist).toEqual(expect.arrayContaining(["drce-run.cjs", "drce-run-loader.cjs", "drce-client.cjs", "drce-client-loader.cjs"]));
    expect(dist.filter((name) => /^drce-run-[0-9a-f]{16}\.v8cache$/.test(name))).toHaveLength(1);
    const bundle = readFileSync(join(checkout, "dist/drce-run.cjs"), "utf8");
    expect(bundle).toContain("// src/cli/run.ts");
    for (const other of ["src/cli/node.ts", "src/cli/submit.ts", "src/cli/completion.ts", "gen/drce/v1/node_service_pb.ts"]) expect(bundle).not.toContain(`// ${other}`);
    const manifest = JSON.parse(readFileSync(join(checkout, "dist/drce-inputs.json"), "utf8")) as { client: string[] };
    expect(manifest.client).toEqual(expect.arrayContaining(["src/cli/run-commands.ts", "src/cli/run.ts"]));
  });

  it("is what drce run loads, its code cache taken, and the client commands' bundle is not read", async () => {
    const result = await drce("run", "--", "echo", "from the run bundle");
    expect(result.stdout).toBe("from the run bundle\n");
    expect(result.code, result.stderr).toBe(0);
    expect(result.report.read).toEqual(expect.arrayContaining(["dist/drce-run.cjs", expect.stringMatching(/^dist\/drce-run-[0-9a-f]{16}\.v8cache$/)]));
    expect(result.report.read.filter((path) => path.startsWith("dist/drce-client"))).toEqual([]);
    expect(result.report.scripts).toEqual([{ file: join(checkout, "dist/drce-run.cjs"), cached: true, rejected: false }]);
  }, 30_000);

  it("leaves the other client commands on the client commands' bundle", async () => {
    const result = await drce("status", "no-such-task");
    expect(result.code).toBe(3);
    expect(result.report.read.filter((path) => path.startsWith("dist/drce-run"))).toEqual([]);
    expect(result.report.scripts).toEqual([{ file: join(checkout, "dist/drce-client.cjs"), cached: true, rejected: false }]);
  }, 30_000);

  it("is not run once a source it was made from is newer than the build: drce run runs the sources", async () => {
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(checkout, "src/cli/run.ts"), later, later);
    const result = await drce("run", "--", "echo", "from the sources");
    expect(result.stdout).toBe("from the sources\n");
    expect(result.code, result.stderr).toBe(0);
    expect(result.report.read.filter((path) => /^dist\/drce-(run|client)/.test(path))).toEqual([]);
    expect(result.report.scripts).toEqual([]);
  }, 60_000);
});
