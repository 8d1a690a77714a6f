import { create, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState, type TaskResult } from "../../gen/drce/v1/task_pb.js";
import { RunTaskRequestSchema, StreamTaskOutputRequestSchema, TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { startDrce } from "../helpers/cli.js";
import { startNode, until, type TestNode } from "../helpers/node.js";
import { liveGroupMembers } from "../helpers/proc.js";

/*
 * A caller whose connection goes away, as when its process dies: the connection is closed
 * under the stream (no RST_STREAM CANCEL from a well-behaved client). An attached RunTask
 * caller takes its task with it; a follower of an async task's output does not.
 * (test/integration/task-service.test.ts covers the same with calls cancelled by the client.)
 */

const finalStates = [TaskState.FINISHED, TaskState.TERMINATED, TaskState.CRASHED, TaskState.NOT_SET, TaskState.EXPIRED];

let node: TestNode;

beforeAll(async () => {
  node = await startNode();
});

afterAll(async () => {
  await node?.stop();
});

/** Opens a server-streaming call over its own HTTP/2 connection; returns the session to cut. */
function openStream<Desc extends DescMessage>(method: string, schema: Desc, message: MessageInitShape<Desc>): http2.ClientHttp2Session {
  const session = http2.connect(node.url);
  session.on("error", () => undefined);
  const stream = session.request({
    ":method": "POST",
    ":path": `/${TaskService.typeName}/${method}`,
    "content-type": "application/connect+proto",
    "connect-protocol-version": "1",
  });
  stream.on("error", () => undefined);
  stream.resume();
  const body = toBinary(schema, create(schema, message));
  const envelope = Buffer.alloc(5 + body.length);
  envelope.writeUInt32BE(body.length, 1);
  Buffer.from(body).copy(envelope, 5);
  stream.end(envelope);
  return session;
}

const get = async (task: string): Promise<TaskResult> => (await node.client.getTask({ task })).result!;
const waitState = (task: string, states: TaskState[], timeoutMs = 15_000): Promise<TaskResult> =>
  until(() => get(task), (r) => states.includes(r.state), timeoutMs, `task ${task} in ${states.map((s) => TaskState[s]).join("|")}`);

describe.concurrent("a streaming caller that disconnects", () => {
  it("from RunTask (its connection closed under the stream) terminates the task and its group", async () => {
    const id = `disc-run-${Date.now()}`;
    const session = openStream("RunTask", RunTaskRequestSchema, { task: { id, command: "sleep 300 & sleep 300" } });
    const running = await waitState(id, [TaskState.IN_PROGRESS]);
    // The task leads its own process group: its pid is the group id.
    expect(liveGroupMembers(running.pid).length).toBeGreaterThan(0);
    session.destroy();
    const ended = await waitState(id, finalStates);
    expect(ended.state).toBe(TaskState.TERMINATED);
    await until(() => liveGroupMembers(running.pid), (members) => members.length === 0, 5000, "the task's group to be gone");
  });

  it("from StreamTaskOutput (its connection closed under the stream) leaves the task running to its end", async () => {
    const id = `disc-follow-${Date.now()}`;
    await node.client.submitTask({ task: create(TaskSpecSchema, { id, command: "echo a; sleep 1; echo b", mode: TaskMode.ASYNC }) });
    const session = openStream("StreamTaskOutput", StreamTaskOutputRequestSchema, { task: id, follow: true });
    await waitState(id, [TaskState.IN_PROGRESS]);
    session.destroy();
    expect((await get(id)).state).toBe(TaskState.IN_PROGRESS);
    const ended = await waitState(id, finalStates);
    expect(ended.state).toBe(TaskState.FINISHED);
    expect(ended.exitStatus).toBe(0);
    expect(Buffer.from((await node.client.fetchTask({ task: id })).result!.stdout).toString()).toBe("a\nb\n");
  });

  it("from `drce run` killed with SIGKILL terminates the task; `drce logs -f` killed does not", { timeout: 90_000 }, async () => {
    const runId = `disc-cli-run-${Date.now()}`;
    const followId = `disc-cli-logs-${Date.now()}`;
    await node.client.submitTask({ task: create(TaskSpecSchema, { id: followId, command: "echo a; sleep 5; echo b", mode: TaskMode.ASYNC }) });
    const run = startDrce(["run", "--server", node.url, "--id", runId, "--", "sh", "-c", "echo started; sleep 300"], { server: node.url });
    const logs = startDrce(["logs", "--server", node.url, "-f", followId], { server: node.url });
    try {
      await until(() => run.stdout() + "|" + logs.stdout(), (out) => out.startsWith("started\n") && out.includes("|a\n"), 30_000, "both CLIs to print");
      run.child.kill("SIGKILL");
      logs.child.kill("SIGKILL");
      const terminated = await waitState(runId, finalStates);
      expect(terminated.state).toBe(TaskState.TERMINATED);
      const finished = await waitState(followId, finalStates);
      expect(finished.state).toBe(TaskState.FINISHED);
      expect(Buffer.from((await node.client.fetchTask({ task: followId })).result!.stdout).toString()).toBe("a\nb\n");
    } finally {
      run.child.kill("SIGKILL");
      logs.child.kill("SIGKILL");
    }
  });
});
