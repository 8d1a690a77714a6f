import { create } from "@bufbuild/protobuf";
import { SessionSchema, SessionType, TaskMode as ProtoTaskMode, TaskSpecSchema, type Session as ProtoSession, type TaskSpec as ProtoTaskSpec } from "../../gen/drce/v1/task_pb.js";
import { TaskMode } from "../domain/states.js";
import type { Session, TaskSpec } from "../domain/task.js";
import { limitsToProto } from "../connect/convert.js";
import { placementToProto } from "../connect/placement-convert.js";

/**
 * The proto TaskSpec of a domain spec, subtasks included: what a manager sends to the node it
 * places a task on. The node reads it back into the same spec (`specFromProto`), secrets of an
 * SSH session included, so it travels only over the connection to that node. The root's
 * placement is written too (a caller sends it to a manager; a data node ignores it).
 */
export function specToProto(spec: TaskSpec): ProtoTaskSpec {
  const proto = subtaskSpecToProto(spec);
  if (spec.placement !== undefined) proto.placement = placementToProto(spec.placement);
  return proto;
}

// Only the root carries a placement: subtasks run on the node of their parent.
function subtaskSpecToProto(spec: TaskSpec): ProtoTaskSpec {
  return create(TaskSpecSchema, {
    id: spec.id,
    alias: spec.alias,
    command: spec.command,
    argv: [...spec.argv],
    input: spec.input,
    env: { ...spec.env },
    workDir: spec.workDir,
    shell: spec.shell,
    session: sessionToProto(spec.session),
    mode: spec.mode === TaskMode.Async ? ProtoTaskMode.ASYNC : ProtoTaskMode.SYNC,
    timeoutSeconds: spec.timeoutSeconds,
    timeMaxMs: BigInt(spec.timeMaxMs),
    cleanup: spec.cleanup,
    files: spec.files.map((f) => ({ name: f.name, data: f.data, action: f.action >>> 0 })),
    limits: limitsToProto(spec.limits),
    subtasks: spec.subtasks.map(subtaskSpecToProto),
    ttlMs: BigInt(spec.ttlMs),
    openStdin: spec.openStdin,
  });
}

function sessionToProto(session: Session): ProtoSession {
  if (session.type === "local") {
    return create(SessionSchema, {
      type: SessionType.LOCAL,
      ...(session.uid === undefined ? {} : { runAsUid: session.uid }),
      ...(session.gid === undefined ? {} : { runAsGid: session.gid }),
    });
  }
  return create(SessionSchema, {
    type: SessionType.SSH,
    host: session.host,
    port: session.port,
    user: session.user,
    password: session.password,
    privateKey: session.privateKey,
    passphrase: session.passphrase,
    hostFingerprint: session.hostFingerprint,
  });
}
