import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionType, TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { startNode, until, type TestNode } from "../helpers/node.js";
import { sshdAvailable, sshdUnavailableReason, startSshd, type TestSshd } from "../helpers/sshd.js";

const available = sshdAvailable();
if (!available && process.env["CI"] === "true") {
  describe("SSH tasks through a node", () => {
    it("needs sshd under CI", () => {
      throw new Error(`sshd is required under CI: ${sshdUnavailableReason() ?? "missing"}`);
    });
  });
}
if (!available) console.warn(`skipping SSH task tests: ${sshdUnavailableReason() ?? "sshd missing"}`);

const base64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64");

describe.skipIf(!available)("SSH tasks through a node", () => {
  let sshd: TestSshd;
  let node: TestNode;
  beforeAll(async () => {
    sshd = await startSshd();
    node = await startNode({ sshKnownHosts: sshd.knownHostsFile });
  });
  afterAll(async () => {
    await node?.stop();
    await sshd?.stop();
  });

  it("runs the legacy examples' sort task over SSH with the same result as locally", async () => {
    const { user, password } = sshd.users.password;
    const request = (session: Record<string, unknown>, id: number) => ({
      type: 0,
      id,
      data: base64({ session: { tmode: 1, ...session }, command: "sort", input: "def\nabc\n123\n", files: [] }),
    });
    const post = async (body: unknown) => {
      const response = await fetch(`${node.url}/drce`, { method: "POST", body: JSON.stringify(body) });
      return ((await response.json()) as { state: number; exit_status: number; stdout: string; error_code: number; error_message: string }[])[0]!;
    };
    const local = await post(request({ type: 0 }, 91_001));
    const remote = await post(request({ type: 1, host: "127.0.0.1", port: sshd.port, user, password }, 91_002));
    expect(remote.error_message).toBe("");
    expect(remote.state).toBe(0);
    expect(remote.exit_status).toBe(local.exit_status);
    expect(Buffer.from(remote.stdout, "base64").toString()).toBe("123\nabc\ndef\n");
    expect(remote.stdout).toBe(local.stdout);
    // The stored request never holds the password.
    const stored = await import("node:fs/promises").then((fs) => fs.readFile(`${node.dataDir}/tasks/91002/request.json`, "utf8"));
    expect(stored).not.toContain(password);
  });

  it("terminates a remote task through the Connect API, mixing local and SSH subtasks", async () => {
    const { user, password } = sshd.users.password;
    const ssh = { type: SessionType.SSH, host: "127.0.0.1", port: sshd.port, user, password };
    const submitted = await node.client.submitTask({
      task: create(TaskSpecSchema, {
        id: "mixed-root",
        command: "echo local",
        mode: TaskMode.ASYNC,
        subtasks: [
          create(TaskSpecSchema, { id: "mixed-ssh", command: "echo remote; whoami", session: ssh, mode: TaskMode.SYNC }),
          create(TaskSpecSchema, { id: "mixed-long", command: "sleep 300", session: ssh, mode: TaskMode.ASYNC }),
        ],
      }),
    });
    expect(submitted.result?.id).toBe("mixed-root");
    const done = await until(() => node.client.getTask({ task: "mixed-ssh" }), (r) => r.result?.state === TaskState.FINISHED, 15_000, "the SSH subtask");
    expect(done.result?.exitStatus).toBe(0);
    const fetched = await node.client.fetchTask({ task: "mixed-ssh" });
    expect(Buffer.from(fetched.result!.stdout).toString()).toBe(`remote\n${user}\n`);
    await until(() => node.client.getTask({ task: "mixed-long" }), (r) => r.result?.state === TaskState.IN_PROGRESS, 15_000, "the long SSH subtask runs");
    const killed = await node.client.terminateTask({ task: "mixed-long", delayMs: 500, repeat: 2 });
    expect(killed.result?.state).toBe(TaskState.TERMINATED);
  });
});
