import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DrceError } from "../../src/domain/errors.js";
import {
  buildRemoteCommand,
  reapGroupCommand,
  shQuote,
  signalAndWaitCommand,
  signalName,
  signalNumber,
  type RemoteCommandOptions,
} from "../../src/executor/ssh/remote-command.js";

const run = promisify(execFile);

/** Runs a command line the way sshd does: `sh -c <line>`. */
async function runLine(line: string): Promise<{ code: number | null; pid: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-c", line], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, pid: child.pid ?? 0, stdout, stderr }));
  });
}

const base: RemoteCommandOptions = { command: "", argv: [], shell: "", env: {}, workDir: "", nonce: "n0nce" };

/** Polls `check` until it holds or the deadline passes. */
async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Tells whether a process group has a member that is not a zombie. */
async function groupAlive(pgid: number): Promise<boolean> {
  const { stdout } = await run("ps", ["-e", "-o", "pgid=,stat="]);
  return stdout.split("\n").some((line) => {
    const [group, stat] = line.trim().split(/\s+/);
    return Number(group) === pgid && stat !== undefined && !stat.startsWith("Z");
  });
}

describe("shQuote", () => {
  it("quotes any string so that sh gives it back unchanged", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.string({ unit: "binary-ascii", maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 })).filter((s) => !s.includes("\0")),
        async (value) => {
        const { stdout } = await run("/bin/sh", ["-c", `printf %s ${shQuote(value)}`]);
          expect(stdout).toBe(value);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("the remote wrapper", () => {
  it("reports its pid and a group it leads, then runs the command with env and directory", async () => {
    // Run by node, the shell is not a group leader, so the wrapper must use setsid.
    const result = await runLine(
      buildRemoteCommand({ ...base, command: 'echo "$FOO" "$(pwd)"; ps -o pgid= -p $$', workDir: "/tmp", env: { FOO: "a 'b' $c" } }),
    );
    expect(result.code).toBe(0);
    const match = /^DRCE-PGID (\d+) (\d+) n0nce\n$/.exec(result.stderr);
    expect(match).not.toBeNull();
    expect(Number(match?.[1])).toBe(result.pid);
    expect(Number(match?.[2])).toBe(result.pid);
    const [line, pgid] = result.stdout.split("\n");
    expect(line).toBe("a 'b' $c /tmp");
    expect(Number(pgid?.trim())).toBe(result.pid);
  });

  it("reports the legacy code of what could not be set up", async () => {
    const cases: [Partial<RemoteCommandOptions>, number][] = [
      [{ command: "true", workDir: "/nonexistent" }, 4],
      [{ command: "true", shell: "/nonexistent/sh -c" }, 15],
      [{ command: "true", shell: "nonexistent-shell -c" }, 15],
      [{ command: "true", shell: "/etc/passwd -c" }, 16],
      [{ argv: ["/nonexistent/program"] }, 101],
      [{ argv: ["nonexistent-program"] }, 101],
    ];
    for (const [fields, code] of cases) {
      const result = await runLine(buildRemoteCommand({ ...base, ...fields }));
      expect(result.stderr).toBe(`DRCE-FAIL ${code} n0nce\n`);
      expect(result.code).toBe(125);
    }
  });

  it("refuses an environment name that is not an identifier", () => {
    expect(() => buildRemoteCommand({ ...base, command: "true", env: { "A;rm": "x" } })).toThrow(DrceError);
  });
});

describe("group control commands", () => {
  const startGroup = (command: string): number => {
    const child = spawn("/bin/sh", ["-c", command], { detached: true, stdio: "ignore" });
    child.unref();
    return child.pid ?? 0;
  };

  it("reaps what is left of a group", async () => {
    const pgid = startGroup("sleep 300 & sleep 300");
    await waitFor(() => groupAlive(pgid), "the group runs");
    const result = await runLine(reapGroupCommand(pgid));
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("");
    expect(await groupAlive(pgid)).toBe(false);
  });

  it("signals a group and tells whether it is gone", async () => {
    const stubborn = startGroup("trap '' TERM; sleep 300 & sleep 300");
    // Both sleeps exist only after the shell ran its trap, so TERM is ignored from then on.
    await waitFor(async () => (await run("ps", ["-e", "-o", "pgid=,comm="])).stdout.split("\n").filter((line) => {
      const [group, comm] = line.trim().split(/\s+/);
      return Number(group) === stubborn && comm === "sleep";
    }).length >= 2, "the group's two sleeps run");
    expect((await runLine(signalAndWaitCommand("TERM", stubborn, 200))).code).toBe(1);
    expect((await runLine(signalAndWaitCommand("KILL", stubborn, 2000))).code).toBe(0);
    expect(await groupAlive(stubborn)).toBe(false);
    // No such group: nothing to do.
    expect((await runLine(signalAndWaitCommand("TERM", stubborn, 200))).code).toBe(0);
  });

  it("maps signal numbers and names both ways", () => {
    expect(signalName(9)).toBe("KILL");
    expect(signalName(15)).toBe("TERM");
    expect(signalName(12345)).toBeUndefined();
    expect(signalNumber("SIGKILL")).toBe(9);
    expect(signalNumber("TERM")).toBe(15);
    expect(signalNumber("SIGNOPE")).toBeUndefined();
  });
});
