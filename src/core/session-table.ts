import { DrceError, ErrorCode } from "../domain/errors.js";
import type { Session, TaskSpec } from "../domain/task.js";
import type { SessionRunner } from "../executor/runner.js";

/** The session runner of each session type; a type the node does not run is absent. */
export type SessionTable = Readonly<Partial<Record<Session["type"], SessionRunner>>>;

const sessionLabels: Readonly<Record<Session["type"], string>> = { local: "local", ssh: "SSH" };

/**
 * The session runner of a session type the node does not run: every operation refuses with
 * the protocol's "node mode not supported" (legacy 5001, Connect InvalidArgument), and
 * recovery has nothing to kill.
 */
function refusingSession(type: Session["type"]): SessionRunner {
  const refusal = (): DrceError =>
    new DrceError("invalid", `${sessionLabels[type]} sessions are not enabled on this node`, { legacyCode: ErrorCode.NodeModeNotSupported });
  return {
    prepareWorkDir: () => Promise.reject(refusal()),
    fileLocation: (_spec, workDir, name) => ({ dir: workDir, name }),
    filesFor: () => {
      throw refusal();
    },
    userFor: () => undefined,
    start: () => Promise.reject(refusal()),
    reap: () => Promise.resolve({ killed: false }),
  };
}

/** Picks a task's session runner by its session type: the table's, or one that refuses the type. */
export function sessionRunnerFor(table: SessionTable, spec: TaskSpec): SessionRunner {
  return table[spec.session.type] ?? refusingSession(spec.session.type);
}
