import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode, TaskState } from "../../gen/drce/v1/task_pb.js";
import { startNode, type TestNode } from "../helpers/node.js";
import { runExample, tsExampleArgs } from "./run-example.js";

let node: TestNode;

beforeAll(async () => {
  node = await startNode({ zmqListen: "127.0.0.1:0" });
});

afterAll(async () => {
  await node?.stop();
});

const ts = (file: string, args: readonly string[]) => runExample(process.execPath, [...tsExampleArgs, `examples/typescript/${file}`, ...args], { DRCE_SERVER: node.url });

describe("the TypeScript examples, against a real node", { timeout: 90_000 }, () => {
  it("run-live.ts writes both streams as the command does and exits with its status", async () => {
    const result = await ts("run-live.ts", ["--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(result.stdout).toBe("out\n");
    expect(result.stderr).toBe("err\n");
    expect(result.code).toBe(3);
  });

  it("run-live.ts reports a failed call with its Connect and legacy codes and exits 125", async () => {
    const port = await freePort();
    const result = await runExample(process.execPath, [...tsExampleArgs, "examples/typescript/run-live.ts", "--", "true"], { DRCE_SERVER: `http://127.0.0.1:${port}` });
    expect(result.stderr).toMatch(/^drce: Unavailable: .+ \(legacy error 100\)\n$/);
    expect(result.code).toBe(125);
  });

  it("submit-and-wait.ts submits, waits, streams the whole output and deletes the task", async () => {
    const result = await ts("submit-and-wait.ts", ["example-saw", "--", "sh", "-c", "sleep 0.2; seq 3; exit 4"]);
    expect(result.stdout).toBe("1\n2\n3\n");
    expect(result.stderr).toMatch(/^example-saw\t(NEW|QUEUED|IN_PROGRESS)\n/);
    expect(result.stderr).toContain("example-saw\tFINISHED\texit=4\tstdout=6 bytes\n");
    expect(result.code).toBe(4);
    await expect(node.client.getTask({ task: "example-saw" })).rejects.toThrow(/\[not_found\] no task "example-saw"/);
  });

  it("follow-events.ts prints the task's state changes until it is done", async () => {
    await node.client.submitTask({ task: { id: "example-events", command: "sleep 0.3; exit 2", mode: TaskMode.ASYNC } });
    const result = await ts("follow-events.ts", ["example-events"]);
    expect(result.code).toBe(0);
    const states = result.stdout.trim().split("\n").filter((line) => line.includes("\t")).map((line) => line.split("\t")[2]);
    expect(states.at(-1)).toBe("FINISHED");
    expect(states).toContain("IN_PROGRESS");
    expect(result.stdout.trim().split("\n").at(-1)).toBe("exit=2");
    const final = await node.client.getTask({ task: "example-events" });
    expect(final.result?.state).toBe(TaskState.FINISHED);
  });
});

describe("the legacy examples, against a real node", { timeout: 90_000 }, () => {
  it("curl.sh sorts through POST /drce and decodes the reply's stdout", async (context) => {
    if (spawnSync("curl", ["--version"]).error !== undefined) {
      console.log("skipping curl.sh: curl is not installed");
      context.skip();
    }
    const result = await runExample("sh", ["examples/legacy/curl.sh"], { DRCE_SERVER: node.url });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const [reply = "", ...stdout] = result.stdout.split("\n");
    const items = JSON.parse(reply) as Array<{ id: number; state: number; error_code: number }>;
    expect(items[0]).toMatchObject({ id: 2345, state: 0, error_code: 0 });
    expect(stdout.join("\n")).toBe("123\nabc\ndef\n");
  });

  it("zmq-client.mjs runs a command through the ZeroMQ gateway", async () => {
    const result = await runExample(process.execPath, ["examples/legacy/zmq-client.mjs", "echo via zmq; exit 5"], { DRCE_ZMQ: node.zmqEndpoint });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("reply 1: id=4242 state=0 exit_status=5 error_code=0\nvia zmq\n");
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
