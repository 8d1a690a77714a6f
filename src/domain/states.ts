/**
 * Task states, numbered exactly as the legacy DRCE protocol numbers them.
 * The typed API shifts them by one (see proto `TaskState`); the mapping lives in connect/.
 */
export const TaskState = {
  Finished: 0,
  InProgress: 1,
  New: 2,
  NotFound: 3,
  Terminated: 4,
  Crashed: 5,
  NotSet: 6,
  Undefined: 7,
  Queued: 8,
  Deleted: 9,
  Busy: 10,
  Expired: 11,
} as const;

/** A legacy task state number. */
export type TaskState = (typeof TaskState)[keyof typeof TaskState];

/** States after which a task never changes again (apart from deletion). */
const finalStates: ReadonlySet<number> = new Set([
  TaskState.Finished,
  TaskState.Terminated,
  TaskState.Crashed,
  TaskState.NotSet,
  TaskState.Expired,
]);

/** Tells whether a task in this state is done and will not change again. */
export function isFinalState(state: number): boolean {
  return finalStates.has(state);
}

/** Human names of the states, for logs and the CLI. */
export const stateNames: Readonly<Record<number, string>> = {
  0: "finished",
  1: "in progress",
  2: "new",
  3: "not found",
  4: "terminated",
  5: "crashed",
  6: "not set",
  7: "undefined",
  8: "queued",
  9: "deleted",
  10: "busy",
  11: "expired",
};

/** Submission modes (legacy `tmode`). */
export const TaskMode = { Sync: 1, Async: 2 } as const;
/** A legacy tmode number. */
export type TaskMode = (typeof TaskMode)[keyof typeof TaskMode];
