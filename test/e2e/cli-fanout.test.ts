import { spawn } from "node:child_process";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { NodeResultSchema, NodeRunStatus, PlacementMode, Stream, TaskResultSchema, TaskState, type NodeResult, type TaskResult } from "../../gen/drce/v1/task_pb.js";
import {
  FetchTaskResponseSchema,
  GetTaskResponseSchema,
  RunTaskResponseSchema,
  StreamTaskOutputResponseSchema,
  SubmitTaskResponseSchema,
  TaskService,
  type RunTaskRequest,
  type RunTaskResponse,
  type StreamTaskOutputResponse,
  type SubmitTaskRequest,
} from "../../gen/drce/v1/task_service_pb.js";
import { drceBin, runDrce } from "../helpers/cli.js";
import { until } from "../helpers/node.js";
import { startScriptedServer, type ScriptedServer } from "../helpers/scripted-server.js";

/*
 * `drce run` fanned out through a manager, as a user runs it: a real drce process against a
 * real Connect server on 127.0.0.1 whose RunTask replies are scripted (node-named events in
 * an interleaved order, a line split over chunks, a last line without its newline, a failing
 * node, an unreachable one), asserting exact stdout, stderr and exit code.
 */

type RunScript = (request: RunTaskRequest, context: HandlerContext) => AsyncIterable<RunTaskResponse>;

let server: ScriptedServer;
let script: RunScript;
let lastRun: RunTaskRequest | undefined;
let lastSubmit: SubmitTaskRequest | undefined;
let runAborted = false;
let taskReply: TaskResult;
let outputEvents: StreamTaskOutputResponse[] = [];

const chunk = (node: string, text: string, stream = Stream.STDOUT): RunTaskResponse =>
  create(RunTaskResponseSchema, { node, event: { case: "output", value: { stream, data: Buffer.from(text) } } });
const nodeEnd = (item: NodeResult): RunTaskResponse => create(RunTaskResponseSchema, { node: item.node, event: { case: "nodeResult", value: item } });
const finished = (node: string, exitStatus: number, timeMs = 12n): NodeResult =>
  create(NodeResultSchema, { node, status: NodeRunStatus.FINISHED, result: { id: "t1", node, state: TaskState.FINISHED, legacyState: 0, exitStatus, timeMs, startedAtMs: 1n } });
const unreachable = (node: string): NodeResult =>
  create(NodeResultSchema, { node, status: NodeRunStatus.UNREACHABLE, errorCode: 5000, errorMessage: `node ${node} is unreachable: connection refused` });
const notStarted = (node: string): NodeResult => create(NodeResultSchema, { node, status: NodeRunStatus.NOT_STARTED });
const merged = (items: NodeResult[]): TaskResult => create(TaskResultSchema, { id: "t1", state: TaskState.FINISHED, nodes: items });
const accepted = (items: NodeResult[] = []): RunTaskResponse =>
  create(RunTaskResponseSchema, { event: { case: "accepted", value: { id: "t1", state: TaskState.IN_PROGRESS, nodes: items } } });
const resultEvent = (result: TaskResult): RunTaskResponse => create(RunTaskResponseSchema, { event: { case: "result", value: result } });
const running = (node: string): NodeResult => create(NodeResultSchema, { node, status: NodeRunStatus.RUNNING });

/** Four nodes: alpha and gamma-7 succeed, b exits 3, delta is unreachable; their events interleave. */
async function* interleaved(): AsyncGenerator<RunTaskResponse> {
  yield accepted(["alpha", "b", "delta", "gamma-7"].map(running));
  yield chunk("alpha", "hel");
  yield chunk("b", "one\ntw");
  yield chunk("alpha", "lo\n");
  yield chunk("gamma-7", "warn\n", Stream.STDERR);
  yield nodeEnd(unreachable("delta"));
  yield chunk("b", "o\n");
  yield chunk("alpha", "last");
  yield nodeEnd(finished("alpha", 0));
  yield chunk("gamma-7", "g1\ng2\n");
  yield nodeEnd(finished("b", 3, 1500n));
  yield nodeEnd(finished("gamma-7", 0));
  yield resultEvent(merged([finished("alpha", 0), finished("b", 3, 1500n), unreachable("delta"), finished("gamma-7", 0)]));
}

beforeAll(async () => {
  server = await startScriptedServer((router) =>
    router.service(TaskService, {
      async *runTask(request, context) {
        lastRun = request;
        try {
          yield* script(request, context);
        } finally {
          if (context.signal.aborted) runAborted = true;
        }
      },
      async submitTask(request) {
        lastSubmit = request;
        return create(SubmitTaskResponseSchema, { result: taskReply });
      },
      async getTask() {
        return create(GetTaskResponseSchema, { result: taskReply });
      },
      async fetchTask() {
        return create(FetchTaskResponseSchema, { result: taskReply });
      },
      async *streamTaskOutput() {
        yield* outputEvents;
      },
    }),
  );
});

afterAll(async () => {
  await server.close();
});

beforeEach(() => {
  lastRun = undefined;
  lastSubmit = undefined;
  runAborted = false;
});

describe("drce run --all", () => {
  it("prefixes each line with its node, joins split lines per node, ends a last line at its node's end, and sums up on stderr", async () => {
    script = interleaved;
    const outcome = await runDrce(server.url, ["run", "--all", "--", "hostname"]);
    expect(outcome.stdout).toBe(["b       | one", "alpha   | hello", "b       | two", "alpha   | last", "gamma-7 | g1", "gamma-7 | g2", ""].join("\n"));
    expect(outcome.stderr).toBe(
      [
        "gamma-7 | warn",
        "NODE     STATUS       EXIT  TIME  ERROR",
        "alpha    finished     0     12ms",
        "b        finished     3     1.5s",
        "delta    unreachable  -     -     node delta is unreachable: connection refused (error 5000)",
        "gamma-7  finished     0     12ms",
        "",
      ].join("\n"),
    );
    // alpha succeeded; b is the first node, in name order, whose task did not exit 0.
    expect(outcome.code).toBe(3);
    expect(lastRun?.task?.placement?.mode).toBe(PlacementMode.ALL);
    expect(lastRun?.task?.placement?.nodes).toEqual([]);
  });

  it("passes raw bytes with --no-prefix, still with the summary", async () => {
    script = interleaved;
    const outcome = await runDrce(server.url, ["run", "--all", "--no-prefix", "--", "hostname"]);
    expect(outcome.stdout).toBe("helone\ntwlo\no\nlastg1\ng2\n");
    expect(outcome.stderr.startsWith("warn\nNODE     STATUS")).toBe(true);
    expect(outcome.code).toBe(3);
  });

  it("exits 0 when every node's task exited 0", async () => {
    script = async function* () {
      yield accepted();
      yield chunk("n1", "a\n");
      yield chunk("n2", "b\n");
      yield resultEvent(merged([finished("n1", 0), finished("n2", 0)]));
    };
    const outcome = await runDrce(server.url, ["run", "--nodes", "n1,n2", "--", "true"]);
    expect(outcome).toEqual({ code: 0, stdout: "n1 | a\nn2 | b\n", stderr: "NODE  STATUS    EXIT  TIME\nn1    finished  0     12ms\nn2    finished  0     12ms\n" });
    expect(lastRun?.task?.placement?.nodes).toEqual(["n1", "n2"]);
  });

  it("exits 125 when the first failing node has no exit status (unreachable)", async () => {
    script = async function* () {
      yield accepted();
      yield nodeEnd(unreachable("a1"));
      yield nodeEnd(finished("b1", 7));
      yield resultEvent(merged([unreachable("a1"), finished("b1", 7)]));
    };
    const outcome = await runDrce(server.url, ["run", "--all", "--", "true"]);
    expect(outcome.code).toBe(125);
    expect(outcome.stderr).toContain("a1    unreachable  -     -     node a1 is unreachable");
  });

  it("reports the nodes a max-errors stop skipped as not started", async () => {
    script = async function* () {
      yield accepted();
      yield nodeEnd(finished("a", 1));
      yield resultEvent(merged([finished("a", 1), notStarted("b"), notStarted("c")]));
    };
    const outcome = await runDrce(server.url, ["run", "--all", "--max-errors", "1", "--max-concurrency", "50%", "--", "false"]);
    expect(outcome.stderr).toBe(["NODE  STATUS       EXIT  TIME", "a     finished     1     12ms", "b     not-started  -     -", "c     not-started  -     -", ""].join("\n"));
    expect(outcome.code).toBe(1);
    const placement = lastRun?.task?.placement;
    expect(placement?.maxErrors?.value).toEqual({ case: "count", value: 1 });
    expect(placement?.maxConcurrency?.value).toEqual({ case: "percent", value: 50 });
  });

  it("uses the node results streamed when the merged result carries none", async () => {
    script = async function* () {
      yield accepted();
      yield chunk("zz", "no newline");
      yield nodeEnd(finished("zz", 0));
      yield nodeEnd(finished("aa", 2));
      yield resultEvent(create(TaskResultSchema, { id: "t1", state: TaskState.FINISHED }));
    };
    const outcome = await runDrce(server.url, ["run", "--all", "--", "x"]);
    expect(outcome.stdout).toBe("zz | no newline\n");
    expect(outcome.stderr).toBe("NODE  STATUS    EXIT  TIME\naa    finished  2     12ms\nzz    finished  0     12ms\n");
    expect(outcome.code).toBe(2);
  });

  it("sends the label selector of --target and the mode of --mode", async () => {
    script = async function* () {
      yield accepted();
      yield resultEvent(merged([finished("web1", 0)]));
    };
    const outcome = await runDrce(server.url, ["run", "--target", "env=prod,os=linux", "--target", "rack=r2", "--", "true"]);
    expect(outcome.code).toBe(0);
    expect(lastRun?.task?.placement?.labels).toEqual({ env: "prod", os: "linux", rack: "r2" });
    expect(lastRun?.task?.placement?.mode).toBe(PlacementMode.ALL);

    script = async function* () {
      yield accepted();
      yield chunk("web1", "x\n");
      yield resultEvent(create(TaskResultSchema, { id: "t1", state: TaskState.FINISHED, exitStatus: 0, node: "web1", placedOn: "web1" }));
    };
    const balanced = await runDrce(server.url, ["run", "--target", "env=prod", "--mode", "balanced", "--", "true"]);
    expect(balanced).toEqual({ code: 0, stdout: "x\n", stderr: "" });
    expect(lastRun?.task?.placement?.mode).toBe(PlacementMode.BALANCED);
  });

  it("gives every node drce's stdin, read to its end before the task is sent", async () => {
    script = async function* (request) {
      yield accepted();
      yield chunk("n1", Buffer.from(request.task?.input ?? new Uint8Array()).toString());
      yield resultEvent(merged([finished("n1", 0)]));
    };
    const child = spawn(process.execPath, [drceBin, "--server", server.url, "run", "--all", "--", "cat"], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
    child.stdin.end("line one\nline two\n");
    const code = await new Promise((resolve) => child.on("close", resolve));
    expect(code).toBe(0);
    expect(stdout).toBe("n1 | line one\nn1 | line two\n");
    expect(lastRun?.task?.openStdin).toBe(false);
  });
});

describe("drce run through a manager without a target", () => {
  it("behaves exactly as on a node: raw output, no prefix, no summary, the task's exit status", async () => {
    script = async function* () {
      yield create(RunTaskResponseSchema, { event: { case: "accepted", value: { id: "t9", state: TaskState.IN_PROGRESS, placedOn: "n3" } } });
      yield chunk("n3", "par");
      yield chunk("n3", "tial", Stream.STDERR);
      yield resultEvent(create(TaskResultSchema, { id: "t9", state: TaskState.FINISHED, exitStatus: 4, node: "n3", placedOn: "n3" }));
    };
    const outcome = await runDrce(server.url, ["run", "-n", "--", "sh", "-c", "exit 4"]);
    expect(outcome).toEqual({ code: 4, stdout: "par", stderr: "tial" });
    expect(lastRun?.task?.placement).toBeUndefined();
  });
});

describe("drce run --all refusals", () => {
  it.each([
    [["--all", "--nodes", "a"], /--all and --nodes exclude each other/],
    [["--all", "--mode", "random"], /--all runs on every node/],
    [["--mode", "sideways"], /--mode "sideways": one of balanced, round-robin, random, all/],
    [["--max-errors", "2"], /--max-errors belongs to a fan-out/],
    [["--all", "--max-concurrency", "0"], /--max-concurrency "0"/],
    [["--all", "--max-errors", "150%"], /--max-errors "150%"/],
    [["--target", "novalue"], /--target "novalue"/],
    [["--nodes", "a,,b"], /a node name is empty/],
    [["--all", "--get", "out.txt"], /--get reads one task's file back/],
  ])("refuses %j as a usage error (exit 2) without calling the server", async (flags, message) => {
    const outcome = await runDrce(server.url, ["run", ...flags, "--", "true"]);
    expect(outcome.code).toBe(2);
    expect(outcome.stderr).toMatch(message);
    expect(outcome.stderr).toContain("Try 'drce help run'");
    expect(lastRun).toBeUndefined();
  });

  it.each([
    [5000, Code.Unavailable, "unavailable: no target node available: no node matches env=none (error 5000)"],
    [5001, Code.InvalidArgument, "invalid_argument: node mode not supported (error 5001)"],
    [5002, Code.ResourceExhausted, "resource_exhausted: resource limits exceeded on every candidate node (error 5002)"],
  ])("reports the manager's error %i with its Connect code and exits 125", async (legacy, code, text) => {
    script = async function* () {
      yield* [];
      throw new ConnectError(text.replace(/^[a-z_]+: /, "").replace(/ \(error \d+\)$/, ""), code, { "drce-error-code": String(legacy) });
    };
    const outcome = await runDrce(server.url, ["run", "--target", "env=none", "--", "true"]);
    expect(outcome).toEqual({ code: 125, stdout: "", stderr: `drce: ${text}\n` });
  });
});

describe("drce run --all interrupted", () => {
  it("cancels the call on SIGINT (which terminates the task on every node) and exits 130", async () => {
    script = async function* (_request, context) {
      yield accepted();
      yield chunk("n1", "started\n");
      await new Promise<void>((resolve) => context.signal.addEventListener("abort", () => resolve(), { once: true }));
    };
    const child = spawn(process.execPath, [drceBin, "--server", server.url, "run", "--all", "--", "sleep", "60"], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
    child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
    const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
    await until(() => stdout, (text) => text.includes("n1 | started"), 20_000, "the first line");
    child.kill("SIGINT");
    expect(await closed).toBe(130);
    expect(stderr).toContain("drce: interrupted; task t1 is being terminated");
    await until(() => runAborted, (aborted) => aborted, 10_000, "the server to see the call cancelled");
  });
});

describe("drce submit, status and fetch of a fanned-out task", () => {
  const items = [finished("alpha", 0), finished("beta", 2, 2500n), unreachable("gamma")];

  it("submit --sync prints the task's line, then one line per node, and exits as a fan-out", async () => {
    taskReply = create(TaskResultSchema, { id: "t1", state: TaskState.FINISHED, timeMs: 2500n, nodes: items });
    const outcome = await runDrce(server.url, ["submit", "--sync", "--nodes", "alpha,beta,gamma", "--", "true"]);
    expect(outcome.stdout).toBe(
      ["t1\tfinished\texit=0\ttime=2.5s", "alpha\tfinished\texit=0\ttime=12ms", "beta\tfinished\texit=2\ttime=2.5s", "gamma\tunreachable\texit=-\ttime=-\tnode gamma is unreachable: connection refused (error 5000)", ""].join("\n"),
    );
    expect(outcome.code).toBe(2);
    expect(lastSubmit?.task?.placement?.nodes).toEqual(["alpha", "beta", "gamma"]);
  });

  it("submit (async) prints the task's line and its nodes as running, and exits 0", async () => {
    taskReply = create(TaskResultSchema, { id: "t1", state: TaskState.IN_PROGRESS, nodes: [running("alpha"), running("beta")] });
    const outcome = await runDrce(server.url, ["submit", "--all", "--", "sleep", "1"]);
    expect(outcome).toEqual({ code: 0, stdout: "t1\tin-progress\nalpha\trunning\texit=-\ttime=-\nbeta\trunning\texit=-\ttime=-\n", stderr: "" });
  });

  it("status shows a row per node", async () => {
    taskReply = create(TaskResultSchema, { id: "t1", state: TaskState.FINISHED, nodes: items });
    const outcome = await runDrce(server.url, ["status", "t1"]);
    expect(outcome.code).toBe(0);
    expect(outcome.stdout).toContain("node:alpha  finished exit=0 time=12ms\n");
    expect(outcome.stdout).toContain("node:beta   finished exit=2 time=2.5s\n");
    expect(outcome.stdout).toContain("node:gamma  unreachable exit=- time=- node gamma is unreachable: connection refused (error 5000)\n");
  });

  it("fetch writes each node's output prefixed, sums up on stderr, and exits as a fan-out", async () => {
    taskReply = create(TaskResultSchema, { id: "t1", state: TaskState.FINISHED, nodes: items });
    const out = (node: string, text: string, stream = Stream.STDOUT): StreamTaskOutputResponse =>
      create(StreamTaskOutputResponseSchema, { node, event: { case: "output", value: { stream, data: Buffer.from(text) } } });
    outputEvents = [out("alpha", "a1\na"), out("beta", "b1\n"), out("beta", "oops\n", Stream.STDERR), out("alpha", "2\n")];
    const outcome = await runDrce(server.url, ["fetch", "t1"]);
    expect(outcome.stdout).toBe("alpha | a1\nbeta  | b1\nalpha | a2\n");
    expect(outcome.stderr).toBe(
      [
        "beta  | oops",
        "NODE   STATUS       EXIT  TIME  ERROR",
        "alpha  finished     0     12ms",
        "beta   finished     2     2.5s",
        "gamma  unreachable  -     -     node gamma is unreachable: connection refused (error 5000)",
        "",
      ].join("\n"),
    );
    expect(outcome.code).toBe(2);
  });
});
