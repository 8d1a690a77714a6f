import { Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { toConnectError } from "../../src/connect/errors.js";
import { sessionRunnerFor } from "../../src/core/session-table.js";
import { DrceError, ErrorCode } from "../../src/domain/errors.js";
import { TaskMode, TaskState } from "../../src/domain/states.js";
import { taskSpec, type TaskSpec } from "../../src/domain/task.js";
import { scriptedCore, type ScriptedCore } from "./core-fixture.js";

const sshSpec = taskSpec({ command: "true", session: { type: "ssh", host: "", port: 0, user: "u", password: "p", privateKey: "", passphrase: "" } as TaskSpec["session"] });

let node: ScriptedCore | undefined;
afterEach(async () => {
  await node?.close();
  node = undefined;
});

describe("the session table", () => {
  it("refuses every operation of a session type the node does not run: InvalidArgument, legacy 5001", async () => {
    const session = sessionRunnerFor({}, sshSpec);
    const refusals = [
      await session.prepareWorkDir(sshSpec, { ownWorkDir: "/nonexistent", parents: [] }).catch((error: unknown) => error),
      await session.start({} as never, { ownWorkDir: "/nonexistent", parents: [] }).catch((error: unknown) => error),
      (() => {
        try {
          return session.filesFor(sshSpec);
        } catch (error) {
          return error;
        }
      })(),
    ];
    for (const refusal of refusals) {
      expect(refusal).toBeInstanceOf(DrceError);
      expect((refusal as DrceError).legacyCode).toBe(ErrorCode.NodeModeNotSupported);
      expect(toConnectError(refusal).code).toBe(Code.InvalidArgument);
      expect(toConnectError(refusal).metadata.get("drce-error-code")).toBe("5001");
    }
    expect(await session.reap({ pid: 1 } as never)).toEqual({ killed: false });
  });

  it("picks the session runner a table gives for the task's type", () => {
    const local = { name: "local" } as never;
    expect(sessionRunnerFor({ local }, taskSpec({ command: "true" }))).toBe(local);
  });

  it("confines a local task's work dir: a home_dir outside the allowed directories ends it with 4", async () => {
    node = await scriptedCore();
    const { view } = await node.core.submit(taskSpec({ command: "done", mode: TaskMode.Sync, workDir: "/etc" }));
    expect(view.status).toMatchObject({ state: TaskState.NotSet, errorCode: ErrorCode.SetHomeDir });
    expect(node.runner.starts).toEqual([]);
  });
});
