import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/drce/v1/task_pb.js";
import { startDrce, type CliResult, type RunningDrce } from "../helpers/cli.js";
import { startNode, until, type TestNode } from "../helpers/node.js";
import { liveGroupMembers } from "../helpers/proc.js";

/*
 * The drce command as a user runs it: `node bin/drce.cjs ...` in a child process against a
 * real node on 127.0.0.1:0, asserting on stdout, stderr and the exit code. Every wait is
 * a poll with a deadline.
 */

const uid = (prefix: string): string => `${prefix}-${randomBytes(4).toString("hex")}`;

type Outcome = CliResult;

interface DrceOptions {
  /** Bytes for drce's stdin; without it stdin is /dev/null. */
  readonly input?: string | Buffer;
  /** Extra environment (DRCE_SERVER is the test node unless given). */
  readonly env?: Record<string, string>;
  readonly cwd?: string;
}

let node: TestNode;
let workDir: string;

/** Starts `node bin/drce.cjs ARGS` against the test node, in the work dir, with piped output and no token from the caller's shell. */
function start(args: readonly string[], options: DrceOptions = {}): RunningDrce {
  return startDrce(args, { server: node.url, cwd: options.cwd ?? workDir, input: options.input, env: options.env });
}

/** Runs `drce ARGS` to its end. */
function drce(args: readonly string[], options: DrceOptions = {}): Promise<Outcome> {
  return start(args, options).done;
}

/** The task's state as the node reports it, or NOT_FOUND once it is gone. */
async function stateOf(task: string): Promise<TaskState> {
  try {
    return (await node.client.getTask({ task })).result?.state ?? TaskState.UNSPECIFIED;
  } catch (error) {
    if (ConnectError.from(error).code === Code.NotFound) return TaskState.NOT_FOUND;
    throw error;
  }
}


beforeAll(async () => {
  node = await startNode();
  workDir = await mkdtemp(join(tmpdir(), "drce-cli-"));
});

afterAll(async () => {
  await node?.stop();
  if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
});

describe("drce run", () => {
  it("streams stdout and stderr and exits with the task's status", async () => {
    const out = await drce(["run", "--server", node.url, "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(out).toMatchObject({ code: 3, stdout: "out\n", stderr: "err\n" });
  });

  it("forwards stdin until EOF, like ssh", async () => {
    expect(await drce(["run", "--", "cat"], { input: "hi\n" })).toMatchObject({ code: 0, stdout: "hi\n", stderr: "" });
  });

  it("forwards a megabyte of stdin and streams megabytes of output", async () => {
    const input = randomBytes(1024 * 1024);
    expect(await drce(["run", "--", "wc", "-c"], { input })).toMatchObject({ code: 0, stdout: `${input.length}\n` });
    const out = await drce(["run", "-n", "--", "head", "-c", "5000000", "/dev/zero"]);
    expect(out.code).toBe(0);
    expect(out.stdout.length).toBe(5_000_000);
  });

  it("gives the task an empty stdin when drce's is /dev/null or -n is given", async () => {
    expect(await drce(["run", "--", "cat"])).toMatchObject({ code: 0, stdout: "" });
    expect(await drce(["run", "-n", "--", "cat"], { input: "not sent" })).toMatchObject({ code: 0, stdout: "" });
  });

  it("runs one word as a shell command line, with -e variables", async () => {
    expect(await drce(["run", "-e", "GREETING=hello", "echo $GREETING world | tr a-z A-Z"])).toMatchObject({ code: 0, stdout: "HELLO WORLD\n" });
    expect(await drce(["run", "-c", "exit 7"])).toMatchObject({ code: 7 });
  });

  it("exits 124 when the task expires", async () => {
    const out = await drce(["run", "--time-max", "300", "--", "sleep", "30"]);
    expect(out.code).toBe(124);
    expect(out.stderr).toMatch(/^drce: task \S+ expired/m);
  });

  it("exits 128+N when the task is killed by a signal", async () => {
    expect((await drce(["run", "-c", "kill -9 $$"])).code).toBe(137);
  });

  it("writes --file before and reads --get back after the command", async () => {
    await writeFile(join(workDir, "local-in.txt"), "abc\n");
    const out = await drce(["run", "--file", "in.txt=@local-in.txt", "--file", "lit.txt=xyz", "--get", "out.txt:got.txt", "--cleanup", "--", "sh", "-c", "tr a-z A-Z < in.txt > out.txt; cat lit.txt"]);
    expect(out).toMatchObject({ code: 0, stdout: "xyz", stderr: "" });
    expect(await readFile(join(workDir, "got.txt"), "utf8")).toBe("ABC\n");
  });

  it("terminates the remote task on SIGINT and exits 130", async () => {
    const id = uid("int");
    const run = start(["run", "--id", id, "--", "sleep", "300"]);
    await until(() => stateOf(id), (s) => s === TaskState.IN_PROGRESS, 15_000, `task ${id} running`);
    run.child.kill("SIGINT");
    const out = await run.done;
    expect(out.code).toBe(130);
    expect(out.stderr).toContain(`task ${id} is being terminated`);
    await until(() => stateOf(id), (s) => s === TaskState.TERMINATED, 15_000, `task ${id} terminated`);
  });

  it("exits 143 when the task is terminated by drce kill", async () => {
    const id = uid("killed");
    const run = start(["run", "--id", id, "--", "sleep", "300"]);
    await until(() => stateOf(id), (s) => s === TaskState.IN_PROGRESS, 15_000, `task ${id} running`);
    expect(await drce(["kill", id])).toMatchObject({ code: 0, stdout: `${id}\tterminated\n` });
    const out = await run.done;
    expect(out.code).toBe(143);
    expect(out.stderr).toMatch(/was terminated by SIGTERM/);
  });
});

describe("drce submit, status, logs, kill, fetch, rm, ls", () => {
  it("manages an async task through its life and kills its whole process group", async () => {
    const id = uid("grp");
    const submitted = await drce(["submit", "--async", "--id", id, "--", "sh", "-c", "echo started; sleep 300 & sleep 300"]);
    expect(submitted.code).toBe(0);
    expect(submitted.stdout).toMatch(new RegExp(`^${id}\\t(new|queued|in-progress)\\n$`));

    const running = await until(
      async () => (await node.client.getTask({ task: id })).result,
      (r) => r !== undefined && r.state === TaskState.IN_PROGRESS && r.pid > 0,
      15_000,
      `task ${id} running`,
    );
    const pid = running?.pid ?? 0;
    // Once both sleeps run, "started" has been written.
    await until(() => liveGroupMembers(pid).length, (n) => n >= 3, 10_000, "sh and both sleeps alive");

    const status = await drce(["status", id]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^state\s+in-progress$/m);
    expect(status.stdout).toMatch(new RegExp(`^pid\\s+${pid}$`, "m"));
    expect(status.stdout).toMatch(/^exit\s+-$/m);

    expect(await drce(["kill", id])).toMatchObject({ code: 0, stdout: `${id}\tterminated\n` });
    await until(() => liveGroupMembers(pid), (members) => members.length === 0, 10_000, `process group ${pid} gone`);

    expect(await drce(["logs", id, "-f"])).toMatchObject({ code: 0, stdout: "started\n", stderr: "" });
    const fetched = await drce(["fetch", id]);
    expect(fetched).toMatchObject({ code: 143, stdout: "started\n" });
    // fetch deletes unless --keep.
    expect((await drce(["status", id])).code).toBe(3);
  });

  it("follows output with logs -f, stdout and stderr apart", async () => {
    const id = uid("follow");
    expect((await drce(["submit", "--id", id, "--", "sh", "-c", "echo one; sleep 0.5; echo two >&2; echo three"])).code).toBe(0);
    expect(await drce(["logs", "-f", id])).toMatchObject({ code: 0, stdout: "one\nthree\n", stderr: "two\n" });
    expect(await drce(["logs", id, "--stderr-only"])).toMatchObject({ code: 0, stdout: "", stderr: "two\n" });
    expect(await drce(["logs", id, "--stdout-only"])).toMatchObject({ code: 0, stdout: "one\nthree\n", stderr: "" });
  });

  it("waits with --sync, prints the summary and exits with the task's status", async () => {
    const id = uid("sync");
    const out = await drce(["submit", "--sync", "--id", id, "--", "sh", "-c", "exit 7"]);
    expect(out.code).toBe(7);
    expect(out.stdout).toMatch(new RegExp(`^${id}\\tfinished\\texit=7\\ttime=\\S+\\n$`));
  });

  it("feeds --stdin-file to the task and fetches with --keep, then rm deletes it", async () => {
    const id = uid("input");
    await writeFile(join(workDir, "stdin.txt"), "from a file\n");
    expect((await drce(["submit", "--id", id, "--stdin-file", "stdin.txt", "--", "cat"])).code).toBe(0);
    await until(() => stateOf(id), (s) => s === TaskState.FINISHED, 15_000, `task ${id} finished`);
    const fetched = await drce(["fetch", "--keep", "--verbose", id]);
    expect(fetched).toMatchObject({ code: 0, stdout: "from a file\n" });
    expect(fetched.stderr).toMatch(new RegExp(`^drce: ${id} finished exit=0 time=`));
    expect(await drce(["rm", id])).toMatchObject({ code: 0, stdout: `${id}\tdeleted\n` });
    expect((await drce(["fetch", id])).code).toBe(3);
  });

  it("writes returned files under --files-dir only", async () => {
    const id = uid("files");
    expect((await drce(["submit", "--sync", "--id", id, "--get", "result.txt", "-c", "echo data > result.txt"])).code).toBe(0);
    // submit --sync with --get writes the file where the user runs drce.
    expect(await readFile(join(workDir, "result.txt"), "utf8")).toBe("data\n");
    expect((await drce(["fetch", id, "--files-dir", "fetched"])).code).toBe(0);
    expect(await readFile(join(workDir, "fetched", "result.txt"), "utf8")).toBe("data\n");
  });

  it("names tasks by alias", async () => {
    const alias = uid("build");
    const submitted = await drce(["submit", "--alias", alias, "--", "sh", "-c", "echo aliased"]);
    expect(submitted.code).toBe(0);
    const id = submitted.stdout.split("\t")[0] ?? "";
    await until(() => stateOf(alias), (s) => s === TaskState.FINISHED, 15_000, `task ${alias} finished`);
    const status = await drce(["status", alias]);
    expect(status.stdout).toMatch(new RegExp(`^id\\s+${id}$`, "m"));
    expect(status.stdout).toMatch(new RegExp(`^alias\\s+${alias}$`, "m"));
    expect(await drce(["fetch", alias, "--keep"])).toMatchObject({ code: 0, stdout: "aliased\n" });
    expect(await drce(["rm", alias])).toMatchObject({ code: 0, stdout: `${id}\tdeleted\n` });
  });

  it("lists tasks as a table, filtered by state", async () => {
    const id = uid("listed");
    expect((await drce(["submit", "--sync", "--id", id, "--", "echo", "listed"])).code).toBe(0);
    const all = await drce(["ls"]);
    expect(all.code).toBe(0);
    const [header, ...lines] = all.stdout.trimEnd().split("\n");
    expect(header?.split(/\s+/)).toEqual(["ID", "ALIAS", "STATE", "MODE", "STARTED", "EXIT", "COMMAND"]);
    const line = lines.find((l) => l.startsWith(`${id} `));
    expect(line?.split(/\s+/)).toEqual([id, "-", "finished", "sync", expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/), "0", "echo", "listed"]);
    const running = await drce(["ls", "--state", "in-progress"]);
    expect(running.stdout).not.toContain(id);
    expect((await drce(["ls", "--state", "nonsense"])).code).toBe(2);
  });

  it("prints the reply messages as JSON with --json", async () => {
    const id = uid("json");
    const submitted = await drce(["submit", "--json", "--sync", "--id", id, "--", "sh", "-c", "printf hi; exit 4"]);
    expect(submitted.code).toBe(4);
    expect(JSON.parse(submitted.stdout)).toMatchObject({ result: { id, state: "TASK_STATE_FINISHED", exitStatus: 4 }, existing: false });
    expect(JSON.parse((await drce(["--json", "status", id])).stdout)).toMatchObject({ result: { id, state: "TASK_STATE_FINISHED", legacyState: 0 } });
    const listed = JSON.parse((await drce(["ls", "--json"])).stdout) as { tasks: Array<{ id: string }> };
    expect(listed.tasks.map((t) => t.id)).toContain(id);
    const fetched = JSON.parse((await drce(["fetch", "--json", "--keep", id])).stdout) as { result: { stdout: string } };
    expect(Buffer.from(fetched.result.stdout, "base64").toString()).toBe("hi");

    const run = await drce(["run", "--json", "--", "sh", "-c", "printf out"]);
    const messages = run.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, { state?: string; data?: string }>);
    expect(Object.keys(messages[0] ?? {})).toEqual(["accepted"]);
    expect(messages.filter((m) => m["output"] !== undefined).map((m) => Buffer.from(m["output"]?.data ?? "", "base64").toString()).join("")).toBe("out");
    expect(messages.at(-1)?.["result"]?.state).toBe("TASK_STATE_FINISHED");
  });

  it("prints state events with watch", async () => {
    const id = uid("watched");
    expect((await drce(["submit", "--sync", "--id", id, "--", "sh", "-c", "exit 5"])).code).toBe(0 + 5);
    const watch = start(["watch", "--from-start", "--task", id]);
    try {
      await until(() => watch.stdout(), (text) => /\tfinished\t5\n/.test(text), 15_000, "the finished event");
      const lines = watch.stdout().trimEnd().split("\n").map((l) => l.split("\t"));
      for (const [seq, taskId] of lines) {
        expect(seq).toMatch(/^\d+$/);
        expect(taskId).toBe(id);
      }
      expect(lines.map((l) => l[2])).toContain("in-progress");
    } finally {
      watch.child.kill("SIGTERM");
      await watch.done;
    }
  });
});

describe("drce errors and help", () => {
  it("exits 3 with the RPC code for an unknown task", async () => {
    for (const command of ["status", "logs", "fetch", "kill", "rm"]) {
      const out = await drce([command, "no-such-task"]);
      expect(out.code, command).toBe(3);
      expect(out.stderr, command).toMatch(/^drce: not_found: .*no-such-task/);
    }
  });

  it("exits 125 when the node cannot be reached", async () => {
    const out = await drce(["ls", "--server", "http://127.0.0.1:1"]);
    expect(out.code).toBe(125);
    expect(out.stderr).toMatch(/^drce: unavailable: /);
  });

  it("exits 2 on usage errors and points at the help", async () => {
    expect(await drce(["run"])).toMatchObject({ code: 2, stderr: expect.stringMatching(/^drce run: no command given.*\nTry 'drce help run'/s) });
    expect((await drce(["bogus"])).code).toBe(2);
    expect((await drce(["status", "--bogus", "x"])).code).toBe(2);
    expect((await drce(["kill", "--signal", "NOPE", "x"])).code).toBe(2);
    expect((await drce([])).code).toBe(2);
  });

  it("prints help and the version", async () => {
    const version = (JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
    expect(await drce(["--version"])).toMatchObject({ code: 0, stdout: `${version}\n` });
    const help = await drce(["help"]);
    for (const command of ["run", "submit", "status", "logs", "kill", "fetch", "rm", "ls", "watch", "serve"]) expect(help.stdout).toMatch(new RegExp(`^  ${command} `, "m"));
    expect(await drce(["run", "--help"])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^usage: drce run /) });
    expect((await drce(["help", "fetch"])).stdout).toMatch(/^usage: drce fetch /);
  });

  it("works from any directory", async () => {
    expect(await drce(["run", "-c", "echo anywhere"], { cwd: "/" })).toMatchObject({ code: 0, stdout: "anywhere\n" });
  });
});

describe("drce against a node with a token", () => {
  let secured: TestNode;
  beforeAll(async () => {
    secured = await startNode({ token: "s3cret-token" });
  });
  afterAll(async () => {
    await secured?.stop();
  });

  it("sends DRCE_TOKEN as a bearer token", async () => {
    const without = await drce(["ls", "--server", secured.url]);
    expect(without.code).toBe(125);
    expect(without.stderr).toMatch(/^drce: unauthenticated: /);
    const wrong = await drce(["ls", "--server", secured.url], { env: { DRCE_TOKEN: "wrong" } });
    expect(wrong.code).toBe(125);
    expect(await drce(["run", "--server", secured.url, "-c", "echo ok"], { env: { DRCE_TOKEN: "s3cret-token" } })).toMatchObject({ code: 0, stdout: "ok\n" });
  });
});
