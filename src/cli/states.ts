import { TaskMode, TaskState } from "../../gen/drce/v1/task_pb.js";

/**
 * The one place where the CLI names task states. The proto enum is the legacy state
 * number plus one; the names are the legacy human names with hyphens instead of spaces,
 * so that a state is one word in `drce ls` columns and in `--state` arguments.
 */
const stateNames: Readonly<Record<TaskState, string>> = {
  [TaskState.UNSPECIFIED]: "unspecified",
  [TaskState.FINISHED]: "finished",
  [TaskState.IN_PROGRESS]: "in-progress",
  [TaskState.NEW]: "new",
  [TaskState.NOT_FOUND]: "not-found",
  [TaskState.TERMINATED]: "terminated",
  [TaskState.CRASHED]: "crashed",
  [TaskState.NOT_SET]: "not-set",
  [TaskState.UNDEFINED]: "undefined",
  [TaskState.QUEUED]: "queued",
  [TaskState.DELETED]: "deleted",
  [TaskState.BUSY]: "busy",
  [TaskState.EXPIRED]: "expired",
};

// Words people type for a state that are not its name.
const stateAliases: Readonly<Record<string, TaskState>> = {
  running: TaskState.IN_PROGRESS,
  refused: TaskState.NOT_SET,
  killed: TaskState.TERMINATED,
};

/** States after which a task never changes again (apart from deletion). */
const finalStates: ReadonlySet<TaskState> = new Set([
  TaskState.FINISHED,
  TaskState.TERMINATED,
  TaskState.CRASHED,
  TaskState.NOT_SET,
  TaskState.EXPIRED,
]);

/** The human name of a proto task state ("finished", "in-progress", ...). */
export function stateName(state: TaskState): string {
  return stateNames[state] ?? `state-${state}`;
}

/**
 * Reads a state name as a user types it: case-insensitive, with hyphens, underscores or
 * spaces, with or without the proto prefix `TASK_STATE_`, or a common alias ("running").
 * Returns undefined for an unknown name.
 */
export function parseStateName(text: string): TaskState | undefined {
  const key = text
    .trim()
    .toLowerCase()
    .replace(/[\s_]+/g, "-")
    .replace(/^task-state-/, "");
  for (const [value, name] of Object.entries(stateNames)) {
    if (name === key && Number(value) !== TaskState.UNSPECIFIED) return Number(value) as TaskState;
  }
  return stateAliases[key];
}

/** Every state name the CLI accepts, for help and error messages. */
export function allStateNames(): string[] {
  return Object.entries(stateNames)
    .filter(([value]) => Number(value) !== TaskState.UNSPECIFIED)
    .map(([, name]) => name);
}

/** Tells whether a task in this state is done and will not change again. */
export function isFinalState(state: TaskState): boolean {
  return finalStates.has(state);
}

/** Tells whether a task in this state has an exit status worth showing. */
export function hasExitStatus(state: TaskState): boolean {
  return state === TaskState.FINISHED || state === TaskState.TERMINATED || state === TaskState.EXPIRED;
}

/** "sync" or "async". */
export function modeName(mode: TaskMode): string {
  return mode === TaskMode.ASYNC ? "async" : "sync";
}
