import { describe, expect, it } from "vitest";
import { SessionType, TaskMode as ProtoTaskMode } from "../../gen/drce/v1/task_pb.js";
import { specToProto } from "../../src/client/spec-to-proto.js";
import { specFromProto } from "../../src/connect/convert.js";
import { TaskMode } from "../../src/domain/states.js";
import { noLimits, taskSpec } from "../../src/domain/task.js";

describe("specToProto", () => {
  it("sends a spec that the node reads back unchanged, subtasks, files and limits included", () => {
    const spec = taskSpec({
      id: "t1",
      alias: "build",
      command: "make -j2",
      input: new TextEncoder().encode("stdin"),
      env: { A: "1" },
      workDir: "/srv/build",
      shell: "/bin/bash -c",
      session: { type: "local", uid: 1000, gid: 100 },
      mode: TaskMode.Async,
      timeoutSeconds: 30,
      timeMaxMs: 60_000,
      cleanup: true,
      files: [{ name: "in.txt", data: new Uint8Array([1, 2]), action: 0x80000001 }],
      limits: { ...noLimits, procMax: 10, cpuMax: 0.5, diskUsageMaxBytes: 1_000_000 },
      subtasks: [taskSpec({ id: "t1-a", argv: ["/bin/true"] })],
      ttlMs: 5000,
      openStdin: true,
    });
    expect(specFromProto(specToProto(spec))).toEqual(spec);
  });

  it("sends an SSH session with its credentials and pinned host key", () => {
    const session = { type: "ssh" as const, host: "h", port: 2222, user: "u", password: "p", privateKey: "k", passphrase: "pp", hostFingerprint: "SHA256:abc" };
    const proto = specToProto(taskSpec({ command: "true", session }));
    expect(proto.session?.type).toBe(SessionType.SSH);
    expect(specFromProto(proto).session).toEqual(session);
  });

  it("leaves run_as unset for a local session without a user, so the node's default user runs it", () => {
    const proto = specToProto(taskSpec({ command: "true" }));
    expect(proto.session?.runAsUid).toBeUndefined();
    expect(proto.session?.runAsGid).toBeUndefined();
    expect(proto.mode).toBe(ProtoTaskMode.SYNC);
  });
});
