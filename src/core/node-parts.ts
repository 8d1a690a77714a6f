import type { TaskStatus } from "../domain/task.js";
import type { NodeIdentity, TaskEvent } from "./api.js";
import type { SequenceLog } from "./sequence-log.js";

/** What a node does: a data node runs tasks itself, a manager forwards them to data nodes. */
export type NodeRole = "data" | "manager";

/**
 * The parts of a node that its node-level services read: the metrics, the notifier and the
 * administration (NodeService, the legacy admin commands). A data node assembles them from
 * its task core and its identity; a manager, which runs no task itself, provides the same
 * from the tasks it forwards, so that those services work unchanged on either.
 */
export interface NodeParts {
  /** How the node names itself in results and notifications; its port is read at call time (known once listening). */
  readonly identity: NodeIdentity;
  /** What the node does, as NodeInfo reports it. */
  readonly role: NodeRole;
  /** The task event log: every state change, in order, for watchers, metrics and notifications. */
  readonly events: SequenceLog<TaskEvent>;
  /** Execution slots: tasks running and waiting. */
  readonly slots: { readonly active: number; readonly queued: number };
  /** Every task the node holds, newest first. */
  list(): readonly TaskStatus[];
  /** Tasks deleted since start, by reason: a caller's request, or the retention bounds of age and count. */
  deletions?(): Readonly<Record<"request" | "age" | "count", number>>;
}
