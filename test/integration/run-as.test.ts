import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionType, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { createRunAsPolicy } from "../../src/core/run-as.js";
import { DrceError } from "../../src/domain/errors.js";
import { taskSpec } from "../../src/domain/task.js";
import { lookupUser } from "../../src/executor/users.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * Run-as-user: a root node runs a local task as the uid it asks for (here `nobody`), in a
 * work directory that user can write; uid 0 is refused unless allowed; a node that is not
 * root refuses other uids. Legacy callers use session.uid / session.gid.
 */

const isRoot = process.geteuid?.() === 0;
const nobody = lookupUser("nobody");
if (!isRoot || nobody === undefined) console.warn("run-as tests skipped: the test does not run as root, or there is no user nobody");

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("utf8");

async function errorOf(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the call succeeded but was expected to fail");
}

/** POSTs one legacy set-task request and returns the first result item. */
async function legacySet(url: string, id: number, data: object): Promise<{ state: number; error_code: number; error_message: string; stdout: string }> {
  const body = JSON.stringify({ type: 0, id, data: Buffer.from(JSON.stringify(data)).toString("base64") });
  const reply = await fetch(`${url}/drce`, { method: "POST", body });
  const items = (await reply.json()) as { state: number; error_code: number; error_message: string; stdout: string }[];
  return items[0]!;
}

describe.skipIf(!isRoot || nobody === undefined)("run-as-user on a root node", () => {
  let node: TestNode;
  let defaulted: TestNode;
  beforeAll(async () => {
    node = await startNode();
    defaulted = await startNode({ runAs: "nobody" });
  });
  afterAll(async () => {
    await node?.stop();
    await defaulted?.stop();
  });

  it("runs the task as the uid it asks for, in a work dir that user can write, with its files", async () => {
    const task = create(TaskSpecSchema, {
      command: "id -u; id -g; echo made > made.txt && cat in.txt && stat -c %u made.txt; echo $USER",
      session: { type: SessionType.LOCAL, runAsUid: nobody!.uid },
      files: [{ name: "in.txt", data: Buffer.from("input\n"), action: 1 }],
    });
    const r = (await node.client.submitTask({ task })).result!;
    expect(text(r.stderr)).toBe("");
    expect(r.state).toBe(TaskState.FINISHED);
    expect(text(r.stdout).split("\n")).toEqual([String(nobody!.uid), String(nobody!.gid), "input", String(nobody!.uid), "nobody", ""]);
  });

  it("takes the gid asked for", async () => {
    const task = create(TaskSpecSchema, { command: "id -u; id -g; id -G", session: { type: SessionType.LOCAL, runAsUid: nobody!.uid, runAsGid: 12345 } });
    const r = (await node.client.submitTask({ task })).result!;
    // Supplementary groups of the node (root's) are dropped.
    expect(text(r.stdout)).toBe(`${nobody!.uid}\n12345\n12345\n`);
  });

  it("runs tasks that name no user as the operator's --run-as user", async () => {
    const r = (await defaulted.client.submitTask({ task: create(TaskSpecSchema, { command: "id -u" }) })).result!;
    expect(text(r.stdout)).toBe(`${nobody!.uid}\n`);
  });

  it("refuses uid 0 with PermissionDenied and legacy error 104, even on a root node, and stores nothing", async () => {
    for (const target of [node, defaulted]) {
      const id = `root-${process.pid}-${target === node ? "a" : "b"}`;
      const error = await errorOf(target.client.submitTask({ task: create(TaskSpecSchema, { id, command: "id -u", session: { type: SessionType.LOCAL, runAsUid: 0 } }) }));
      expect(error.code).toBe(Code.PermissionDenied);
      expect(error.metadata.get("drce-error-code")).toBe("104");
      expect(error.rawMessage).toMatch(/--allow-root-tasks/);
      const lookup = await errorOf(target.client.getTask({ task: id }));
      expect(lookup.code).toBe(Code.NotFound);
    }
    const item = await legacySet(node.url, 7001, { session: { tmode: 1, uid: 0 }, command: "id -u" });
    expect(item.state).toBe(6);
    expect(item.error_code).toBe(104);
  });

  it("runs uid 0 when the operator allows root tasks", async () => {
    const allowing = await startNode({ allowRootTasks: true, runAs: "nobody" });
    try {
      const r = (await allowing.client.submitTask({ task: create(TaskSpecSchema, { command: "id -u", session: { type: SessionType.LOCAL, runAsUid: 0 } }) })).result!;
      expect(text(r.stdout)).toBe("0\n");
    } finally {
      await allowing.stop();
    }
  });

  it("takes session.uid and session.gid from legacy callers", async () => {
    const item = await legacySet(node.url, 7002, { session: { tmode: 1, uid: nobody!.uid, gid: nobody!.gid }, command: "id -u; id -g" });
    expect(item.state).toBe(0);
    expect(Buffer.from(item.stdout, "base64").toString()).toBe(`${nobody!.uid}\n${nobody!.gid}\n`);
  });

  it("refuses malformed run-as requests with InvalidArgument (legacy 103)", async () => {
    const gidOnly = await errorOf(node.client.submitTask({ task: create(TaskSpecSchema, { command: "true", session: { type: SessionType.LOCAL, runAsGid: 5 } }) }));
    expect(gidOnly.code).toBe(Code.InvalidArgument);
    expect(gidOnly.metadata.get("drce-error-code")).toBe("103");
    const overSsh = await errorOf(node.client.submitTask({ task: create(TaskSpecSchema, { command: "true", session: { type: SessionType.SSH, user: "x", runAsUid: 5 } }) }));
    expect(overSsh.code).toBe(Code.InvalidArgument);
    const legacy = await legacySet(node.url, 7003, { session: { tmode: 1, type: 1, uid: 5 }, command: "true" });
    expect(legacy.state).toBe(6);
    expect(legacy.error_code).toBe(103);
    const negative = await legacySet(node.url, 7004, { session: { tmode: 1, uid: -1 }, command: "true" });
    expect(negative.error_code).toBe(103);
  });
});

describe("the run-as policy of a node that is not root", () => {
  const policy = createRunAsPolicy({ nodeUid: 1000, defaultUser: undefined, allowRootTasks: false });
  const local = (uid?: number, gid?: number) =>
    taskSpec({ command: "true", session: { type: "local", ...(uid === undefined ? {} : { uid }), ...(gid === undefined ? {} : { gid }) } });
  const refusal = (spec: ReturnType<typeof local>): DrceError => {
    try {
      policy(spec);
    } catch (error) {
      if (error instanceof DrceError) return error;
      throw error;
    }
    throw new Error("the policy accepted the task");
  };

  it("runs tasks that ask for nothing, or for its own uid, as itself", () => {
    expect(policy(local())).toBeUndefined();
    expect(policy(local(1000))).toBeUndefined();
  });

  it("refuses another uid with a denial naming the reason (PermissionDenied, legacy 5001)", () => {
    const error = refusal(local(1001));
    expect(error.kind).toBe("denied");
    expect(error.legacyCode).toBe(5001);
    expect(error.message).toMatch(/does not run as root/);
  });

  it("refuses uid 0 as a root request (legacy 104)", () => {
    const error = refusal(local(0));
    expect(error.kind).toBe("denied");
    expect(error.legacyCode).toBe(104);
  });
});
