import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { toConnectError } from "../../src/connect/errors.js";
import { DrceError, ErrorCode } from "../../src/domain/errors.js";
import { taskSpec, taskStatus } from "../../src/domain/task.js";
import { createSshRunner } from "../../src/executor/ssh/ssh-runner.js";
import { createSshSession } from "../../src/executor/ssh/ssh-session.js";

// No connection is made by any of these: they need no sshd.
const runner = createSshRunner({ knownHostsFile: "/nonexistent/known_hosts", trustOnFirstUse: false });

describe("the SSH runner and its session runner, without a connection", () => {
  it("refuses its session-free file operations precisely: InvalidArgument, legacy 5001", async () => {
    const refusals = await Promise.all([
      runner.files.read("/tmp", "x", 1).catch((error: unknown) => error),
      runner.files.write("/tmp", "x", new Uint8Array(0)).catch((error: unknown) => error),
      runner.files.remove("/tmp", "x").catch((error: unknown) => error),
      runner.files.prepareWorkDir("/tmp").catch((error: unknown) => error),
    ]);
    for (const refusal of refusals) {
      expect(refusal).toBeInstanceOf(DrceError);
      expect(refusal).toMatchObject({ kind: "invalid", legacyCode: ErrorCode.NodeModeNotSupported });
      expect(toConnectError(refusal).code).toBe(Code.InvalidArgument);
    }
  });

  it("keeps a file name in the remote work dir, and reaps nothing of a dead node's remote task", async () => {
    const session = createSshSession(runner);
    const spec = taskSpec({ id: "t", command: "true" });
    expect(session.fileLocation(spec, ".drce/tasks/t", "/abs/name")).toEqual({ dir: ".drce/tasks/t", name: "/abs/name" });
    expect(session.userFor(spec)).toBeUndefined();
    expect(await session.reap(taskStatus({ id: "t", pid: 4242, pgid: 4242 }))).toEqual({ killed: false });
  });
});
