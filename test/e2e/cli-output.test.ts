import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runDrce } from "../helpers/cli.js";
import { spawnNodeProcess, type NodeProcess } from "../helpers/node-process.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * Output is complete, or the loss is loud, as a user of the CLI sees it: `drce run` gets
 * every byte whatever the node keeps; `drce logs` and `drce fetch` of a stream the node cut
 * print its head, a warning naming the bytes not kept, and its tail.
 */

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A pattern in which any dropped or repeated stretch shows: numbers counting up, one a line. */
const pattern = (bytes: number): string => `seq 1 999999999 | head -c ${bytes}`;

interface Digests {
  readonly bytes: number;
  readonly all: string;
  /** Digest of the first `headBytes` bytes. */
  readonly head: string;
  /** Digest of the last `tailBytes` bytes. */
  readonly tail: string;
}

/** Hashes a byte stream as it flows: the whole, its first and its last bytes. */
function digester(headBytes: number, tailFrom: number) {
  const all = createHash("sha256");
  const head = createHash("sha256");
  const tail = createHash("sha256");
  let seen = 0;
  return {
    update(chunk: Buffer): void {
      all.update(chunk);
      if (seen < headBytes) head.update(chunk.subarray(0, headBytes - seen));
      if (seen + chunk.length > tailFrom) tail.update(chunk.subarray(Math.max(0, tailFrom - seen)));
      seen += chunk.length;
    },
    digest: (): Digests => ({ bytes: seen, all: all.digest("hex"), head: head.digest("hex"), tail: tail.digest("hex") }),
  };
}

interface Outcome {
  readonly code: number | null;
  readonly stdout: Digests;
  readonly stdoutText: string;
  readonly stderr: string;
}

/** A stdout sink that hashes what flows (a GiB is never held) and keeps at most 1 MiB of it as text. */
function hashedStdout(headBytes: number, tailFrom: number): { onStdout: (chunk: Buffer) => void; outcome: (code: number | null, stderr: string) => Outcome } {
  const hash = digester(headBytes, tailFrom);
  let text = "";
  return {
    onStdout: (chunk) => {
      hash.update(chunk);
      if (text.length < MiB) text += chunk.toString("utf8");
    },
    outcome: (code, stderr) => ({ code, stdout: hash.digest(), stdoutText: text, stderr }),
  };
}

/** Runs a program (the reference output), hashing its stdout as it comes and keeping its stderr. */
function runHashed(command: string, args: readonly string[], headBytes: number, tailFrom: number): Promise<Outcome> {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  const sink = hashedStdout(headBytes, tailFrom);
  let stderr = "";
  child.stdout.on("data", sink.onStdout);
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve(sink.outcome(code, stderr)));
  });
}

/** Runs `drce ARGS` against `server`, hashing its stdout as it comes. */
async function drce(server: string, args: readonly string[], headBytes = 0, tailFrom = Number.POSITIVE_INFINITY): Promise<Outcome> {
  const sink = hashedStdout(headBytes, tailFrom);
  const result = await runDrce(server, args, { onStdout: sink.onStdout });
  return sink.outcome(result.code, result.stderr);
}

describe("a GiB through a default node (256 MiB kept per stream)", { timeout: 600_000 }, () => {
  let node: NodeProcess;
  beforeAll(async () => {
    node = await spawnNodeProcess();
  }, 90_000);
  afterAll(async () => {
    await node?.stop();
  });

  it("drce run delivers all of it; drce logs afterwards warns of the 768 MiB not kept and shows head and tail", async () => {
    const kept = 256 * MiB;
    // What the command writes, hashed here from the same pipeline run locally.
    const expected = await runHashed("sh", ["-c", pattern(GiB)], kept / 2, GiB - kept / 2);
    expect(expected.stdout.bytes).toBe(GiB);

    const run = await drce(node.url, ["run", "--id", "gib", "--", "sh", "-c", pattern(GiB)]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe("");
    expect(run.stdout.bytes).toBe(GiB);
    expect(run.stdout.all).toBe(expected.stdout.all);

    const logs = await drce(node.url, ["logs", "gib"], kept / 2, kept / 2);
    expect(logs.code).toBe(0);
    expect(logs.stdout.bytes).toBe(kept);
    expect(logs.stdout.head).toBe(expected.stdout.head);
    expect(logs.stdout.tail).toBe(expected.stdout.tail);
    expect(logs.stderr).toBe(
      `drce: ${GiB - kept} bytes of stdout were not kept by the node (from offset ${kept / 2}; it keeps the head and the tail of a stream past --max-output-bytes)\n`,
    );
  });
});

describe("a node that keeps 1000 bytes per stream and answers with 4096 inline", { timeout: 120_000 }, () => {
  let node: TestNode;
  /** `seq 1 100000`: 588895 bytes. */
  const full = Buffer.from(Array.from({ length: 100000 }, (_, i) => `${i + 1}\n`).join(""));
  const warning = `drce: ${full.length - 1000} bytes of stdout were not kept by the node (from offset 500; it keeps the head and the tail of a stream past --max-output-bytes)\n`;
  const headAndTail = Buffer.concat([full.subarray(0, 500), full.subarray(full.length - 500)]).toString();

  beforeAll(async () => {
    node = await startNode({ maxOutputBytes: 1000, inlineOutputBytes: 4096 });
  }, 30_000);
  afterAll(async () => {
    await node?.stop();
  });

  it("drce run prints every byte, past the cap, and says nothing", async () => {
    const run = await drce(node.url, ["run", "--id", "seq-run", "--", "seq", "1", "100000"]);
    expect(run).toMatchObject({ code: 0, stderr: "" });
    expect(run.stdout.bytes).toBe(full.length);
    expect(run.stdout.all).toBe(createHash("sha256").update(full).digest("hex"));
  });

  it("drce logs and drce fetch print head, a warning where the gap is, and tail", async () => {
    await drce(node.url, ["submit", "--sync", "--id", "seq-kept", "--", "seq", "1", "100000"]);
    const logs = await drce(node.url, ["logs", "seq-kept"]);
    expect(logs).toMatchObject({ code: 0, stdoutText: headAndTail, stderr: warning });
    const fetched = await drce(node.url, ["fetch", "--keep", "seq-kept"]);
    expect(fetched).toMatchObject({ code: 0, stdoutText: headAndTail, stderr: warning });
    // Without --keep the fetch deletes the task once it has written everything.
    expect(await drce(node.url, ["fetch", "seq-kept"])).toMatchObject({ code: 0, stdoutText: headAndTail, stderr: warning });
    expect((await drce(node.url, ["status", "seq-kept"])).code).toBe(3);
  });

  it("drce logs --stderr-only of a task whose stdout was cut prints no warning for stdout", async () => {
    await drce(node.url, ["submit", "--sync", "--id", "seq-err", "--", "sh", "-c", "seq 1 100000; echo done >&2"]);
    const logs = await drce(node.url, ["logs", "--stderr-only", "seq-err"]);
    expect(logs).toMatchObject({ code: 0, stdoutText: "", stderr: "done\n" });
  });

  it("drce fetch --json of a cut stream carries the 1000 bytes kept, the true size, and warns", async () => {
    const command = "seq 1 300"; // 1092 bytes: past the 1000 kept; the inline bound holds all that is kept
    await drce(node.url, ["submit", "--sync", "--id", "seq-json", "--", "sh", "-c", command]);
    const json = await drce(node.url, ["fetch", "--json", "--keep", "seq-json"]);
    expect(json.code).toBe(0);
    const reply = JSON.parse(json.stdoutText) as { result: { stdout: string; stdoutSize: string; stdoutTruncated: boolean; stdoutMoreAvailable: boolean } };
    expect(Buffer.from(reply.result.stdout, "base64").length).toBe(1000);
    expect(reply.result).toMatchObject({ stdoutSize: "1092", stdoutTruncated: true, stdoutMoreAvailable: false });
    expect(json.stderr).toMatch(/only its head and tail were kept/);
  });
});

describe("a node that answers with 4096 bytes inline and keeps everything", { timeout: 120_000 }, () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ maxOutputBytes: 0, inlineOutputBytes: 4096 });
  }, 30_000);
  afterAll(async () => {
    await node?.stop();
  });

  it("drce fetch prints all 588895 bytes; --json carries 4096 of them and says more are available", async () => {
    await drce(node.url, ["submit", "--sync", "--id", "big", "--", "seq", "1", "100000"]);
    const fetched = await drce(node.url, ["fetch", "--keep", "big"]);
    expect(fetched).toMatchObject({ code: 0, stderr: "" });
    expect(fetched.stdout.bytes).toBe(588895);
    const json = await drce(node.url, ["fetch", "--json", "--keep", "big"]);
    const reply = JSON.parse(json.stdoutText) as { result: { stdout: string; stdoutMoreAvailable: boolean; stdoutSize: string } };
    expect(Buffer.from(reply.result.stdout, "base64").length).toBe(4096);
    expect(reply.result).toMatchObject({ stdoutMoreAvailable: true, stdoutSize: "588895" });
    expect(json.stderr).toMatch(/drce logs big writes all of it/);
  });
});
