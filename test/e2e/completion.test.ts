import { execFile, execFileSync, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode } from "../../gen/drce/v1/task_pb.js";
import { drceBin, runDrce } from "../helpers/cli.js";
import { startNode, type TestNode } from "../helpers/node.js";

let node: TestNode;
let dir: string;
let script: string;

beforeAll(async () => {
  node = await startNode();
  dir = mkdtempSync(join(tmpdir(), "drce-completion-"));
  // The script calls `drce ls` as the first word of the line names it: a drce on PATH.
  writeFileSync(join(dir, "drce"), `#!/bin/sh\nexec "${process.execPath}" "${drceBin}" "$@"\n`);
  chmodSync(join(dir, "drce"), 0o755);
  writeFileSync(join(dir, "token-file.txt"), "t\n");
  const printed = await runDrce(node.url, ["completion", "bash"]);
  expect(printed.code).toBe(0);
  script = join(dir, "drce.bash");
  writeFileSync(script, printed.stdout);
  await node.client.submitTask({ task: { id: "comp-7", alias: "nightly", command: "true", mode: TaskMode.SYNC } });
});

afterAll(async () => {
  await node?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/**
 * What bash completes for a command line whose last word is being typed, as `complete -F`
 * would call it. Asynchronously: the node answering `drce ls` runs in this process.
 */
async function complete(...words: string[]): Promise<string[]> {
  const program = [
    `source ${JSON.stringify(script)}`,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")})`,
    `COMP_CWORD=${words.length - 1}`,
    `COMP_LINE="\${COMP_WORDS[*]}"`,
    "_drce",
    `printf '%s\\n' "\${COMPREPLY[@]}"`,
  ].join("\n");
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dir}:${process.env["PATH"] ?? ""}`, DRCE_SERVER: node.url };
  delete env["DRCE_TOKEN"];
  const { stdout } = await promisify(execFile)("bash", ["--norc", "--noprofile", "-c", program], { cwd: dir, env, encoding: "utf8" });
  return stdout.split("\n").filter((line) => line !== "");
}

describe("drce completion bash, sourced in a real bash", { timeout: 90_000 }, () => {
  it("registers _drce for drce with complete -F", () => {
    const out = execFileSync("bash", ["--norc", "--noprofile", "-c", `source ${JSON.stringify(script)}; complete -p drce`], { encoding: "utf8" });
    expect(out.trim()).toBe("complete -o default -F _drce drce");
  });

  it("completes command names, completion itself included", async () => {
    expect(await complete("drce", "lo")).toEqual(["logs"]);
    expect(await complete("drce", "s")).toEqual(["serve", "submit", "status"]);
    expect(await complete("drce", "")).toEqual(expect.arrayContaining(["run", "fetch", "node", "completion", "help"]));
    expect(await complete("drce", "help", "wa")).toEqual(["watch"]);
    expect(await complete("drce", "completion", "")).toEqual(["bash", "zsh"]);
  });

  it("completes a command's flags from its option tables, and only its own", async () => {
    expect(await complete("drce", "logs", "--fo")).toEqual(["--follow"]);
    expect(await complete("drce", "run", "--ti")).toEqual(["--time-max", "--timeout"]);
    expect(await complete("drce", "run", "--token")).toEqual(["--token", "--token-file"]);
    expect(await complete("drce", "kill", "--s")).toEqual(["--server", "--signal"]);
    expect(await complete("drce", "fetch", "--")).not.toContain("--follow");
    expect(await complete("drce", "serve", "--max-q")).toEqual(["--max-queue"]);
    expect(await complete("drce", "serve", "--no-")).toEqual(expect.arrayContaining(["--no-zmq", "--no-admin-zmq", "--no-cgroups"]));
    expect(await complete("drce", "--se")).toEqual(["--server"]);
  });

  it("completes the words before the command and skips their values", async () => {
    expect(await complete("drce", "--server", node.url, "st")).toEqual(["status"]);
  });

  it("completes drce node's subcommands", async () => {
    expect(await complete("drce", "node", "")).toEqual(["info", "host", "usage", "stats", "tasks", "reports"]);
  });

  it("completes file names after a flag that takes a file", async () => {
    expect(await complete("drce", "ls", "--token-file", "token-")).toEqual(["token-file.txt"]);
  });

  it("completes the ids and aliases of the node's tasks for a command that takes a task", async () => {
    expect(await complete("drce", "logs", "comp-")).toEqual(["comp-7"]);
    expect(await complete("drce", "status", "night")).toEqual(["nightly"]);
    expect(await complete("drce", "--server", node.url, "fetch", "--keep", "comp")).toEqual(["comp-7"]);
  });

  it("offers no task ids where a command takes none", async () => {
    expect(await complete("drce", "ls", "comp")).toEqual([]);
  });
});

describe("drce completion", { timeout: 90_000 }, () => {
  it("refuses a shell it has no script for, exit 2", async () => {
    const result = await runDrce(node.url, ["completion", "fish"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('drce completion: name the shell: bash or zsh (got "fish")');
    const none = await runDrce(node.url, ["completion"]);
    expect(none.code).toBe(2);
  });

  it("prints a zsh script that loads the bash one through bashcompinit", async () => {
    const result = await runDrce(node.url, ["completion", "zsh"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("bashcompinit");
    expect(result.stdout).toContain("complete -o default -F _drce drce");
    const zsh = spawnSync("zsh", ["--version"], { encoding: "utf8" });
    if (zsh.error !== undefined) {
      console.log("skipping the zsh run: zsh is not installed");
      return;
    }
    const check = spawnSync("zsh", ["-f", "-c", `source /dev/stdin; (( $+functions[_drce] ))`], { input: result.stdout, encoding: "utf8" });
    expect(check.status).toBe(0);
  });
});
