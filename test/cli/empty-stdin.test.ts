import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { holdsNothing } from "../../src/cli/empty-stdin.js";
import { drceBin, type CliResult } from "../helpers/cli.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * `drce run` does not forward a stdin that can only give EOF (/dev/null, an empty file): the
 * task's stdin is closed at once, which its program reads as the same EOF, and drce makes no
 * stdin stream. A stdin with bytes is forwarded as before.
 */

const report = fileURLToPath(new URL("../fixtures/cli-start-report.cjs", import.meta.url));
let work: string;
let node: TestNode;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "drce-stdin-"));
  node = await startNode();
});

afterAll(async () => {
  await node.stop();
  rmSync(work, { recursive: true, force: true });
});

/** Runs `drce run ARGS` with `stdin` (a descriptor or "pipe" fed with `input`) and what the start report says. */
function drceRun(args: readonly string[], stdin: number | "ignore" | "pipe", input?: string): Promise<CliResult & { stdinMade: boolean }> {
  const reportFile = join(work, `report-${Math.random().toString(16).slice(2)}.json`);
  const child = spawn(process.execPath, ["--require", report, drceBin, "run", ...args], {
    env: { ...process.env, DRCE_SERVER: node.url, DRCE_TOKEN: undefined, DRCE_TEST_START_REPORT: reportFile },
    stdio: [stdin, "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  if (input !== undefined) child.stdin?.end(input);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      const { stdinMade } = JSON.parse(readFileSync(reportFile, "utf8")) as { stdinMade: boolean };
      resolve({ code, stdout, stderr, stdinMade });
    });
  });
}

/** Opens a file of `text` for reading. */
function fileOf(name: string, text: string): number {
  const path = join(work, name);
  writeFileSync(path, text);
  return openSync(path, "r");
}

describe("holdsNothing", () => {
  it("knows /dev/null and an empty file as empty", () => {
    const devNull = openSync("/dev/null", "r");
    const empty = fileOf("empty", "");
    try {
      expect(holdsNothing(devNull)).toBe(true);
      expect(holdsNothing(empty)).toBe(true);
    } finally {
      closeSync(devNull);
      closeSync(empty);
    }
  });

  it("takes a file with bytes, a pipe, a closed descriptor and none for what may hold something", async () => {
    const full = fileOf("full", "x");
    const child = spawn("sleep", ["30"], { stdio: ["pipe", "ignore", "ignore"] });
    try {
      expect(holdsNothing(full)).toBe(false);
      expect(holdsNothing((child.stdin as unknown as { _handle: { fd: number } })._handle.fd)).toBe(false);
      expect(holdsNothing(1_000_000)).toBe(false);
      expect(holdsNothing(undefined)).toBe(false);
    } finally {
      closeSync(full);
      child.kill("SIGKILL");
    }
  });
});

describe("drce run with a stdin that holds nothing", () => {
  it("gives a program reading /dev/null its EOF at once, with no stdin stream made", async () => {
    const result = await drceRun(["--", "sh", "-c", "cat; echo read-to-eof"], "ignore");
    expect(result).toEqual({ code: 0, stdout: "read-to-eof\n", stderr: "", stdinMade: false });
  }, 30_000);

  it("gives a program reading an empty file its EOF at once, with no stdin stream made", async () => {
    const empty = fileOf("empty-stdin", "");
    try {
      const result = await drceRun(["--", "sh", "-c", "wc -c; echo read-to-eof"], empty);
      expect(result).toEqual({ code: 0, stdout: "0\nread-to-eof\n", stderr: "", stdinMade: false });
    } finally {
      closeSync(empty);
    }
  }, 30_000);

  it("still forwards a file with bytes and a pipe, to their end", async () => {
    const full = fileOf("full-stdin", "from a file\n");
    try {
      expect(await drceRun(["--", "cat"], full)).toEqual({ code: 0, stdout: "from a file\n", stderr: "", stdinMade: true });
    } finally {
      closeSync(full);
    }
    expect(await drceRun(["--", "cat"], "pipe", "from a pipe\n")).toEqual({ code: 0, stdout: "from a pipe\n", stderr: "", stdinMade: true });
  }, 30_000);
});
