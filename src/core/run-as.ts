import { DrceError, ErrorCode } from "../domain/errors.js";
import type { TaskSpec } from "../domain/task.js";
import type { RunAs } from "../executor/runner.js";
import { lookupUser } from "../executor/users.js";

/** The operator's rules for the users tasks run as; see {@link createRunAsPolicy}. */
export interface RunAsPolicyOptions {
  /** The node's own effective uid (process.geteuid()). */
  readonly nodeUid: number;
  /** The user tasks run as when they do not ask (`--run-as`); undefined: the node's own. */
  readonly defaultUser: RunAs | undefined;
  /** Whether a task may ask to run as uid 0 (`--allow-root-tasks`). */
  readonly allowRootTasks: boolean;
}

/**
 * Decides which user a local task runs as, or refuses it:
 * - a task that names no uid runs as the operator's `--run-as` user, else as the node's
 *   own user (so a root node without `--run-as` runs tasks as root, as before);
 * - a node that is not root cannot switch users: a uid other than its own is refused
 *   (PermissionDenied, legacy 5001 "node mode not supported");
 * - an explicit uid 0 is refused unless the operator passed `--allow-root-tasks`
 *   (PermissionDenied, legacy 104), even on a root node;
 * - a gid without a uid is a malformed request (InvalidArgument, legacy 103).
 * Returns undefined when the task runs as the node's own user.
 */
export function createRunAsPolicy(options: RunAsPolicyOptions): (spec: TaskSpec) => RunAs | undefined {
  return (spec) => {
    const session = spec.session;
    if (session.type !== "local") return undefined;
    if (session.uid === undefined) {
      if (session.gid !== undefined) throw new DrceError("invalid", "a gid needs a uid to run as", { legacyCode: ErrorCode.BadInput });
      return options.defaultUser;
    }
    const uid = session.uid;
    if (uid === 0 && !options.allowRootTasks) {
      throw new DrceError("denied", "tasks may not run as root (uid 0) on this node; the operator can allow it with --allow-root-tasks", {
        legacyCode: ErrorCode.CreateTask,
      });
    }
    if (options.nodeUid !== 0) {
      if (uid === options.nodeUid && (session.gid === undefined || session.gid === process.getegid?.())) return undefined;
      throw new DrceError("denied", `this node does not run as root, so it cannot run tasks as uid ${uid}`, { legacyCode: ErrorCode.NodeModeNotSupported });
    }
    const user = lookupUser(uid)!;
    return { ...user, gid: session.gid ?? user.gid };
  };
}
