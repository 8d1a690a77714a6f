import { TaskState } from "../../gen/drce/v1/task_pb.js";

/** How the console names each task state: the word shown, and the `.badge.state-<class>` it wears. */
const states: Readonly<Record<number, { readonly label: string; readonly badge: string }>> = {
  [TaskState.NEW]: { label: "new", badge: "queued" },
  [TaskState.QUEUED]: { label: "queued", badge: "queued" },
  [TaskState.IN_PROGRESS]: { label: "running", badge: "running" },
  [TaskState.FINISHED]: { label: "finished", badge: "finished" },
  [TaskState.TERMINATED]: { label: "terminated", badge: "terminated" },
  [TaskState.CRASHED]: { label: "crashed", badge: "crashed" },
  [TaskState.DELETED]: { label: "deleted", badge: "deleted" },
  [TaskState.NOT_FOUND]: { label: "not found", badge: "deleted" },
  [TaskState.BUSY]: { label: "busy", badge: "running" },
  [TaskState.NOT_SET]: { label: "not set", badge: "deleted" },
  [TaskState.UNDEFINED]: { label: "undefined", badge: "deleted" },
};

/** The word the console shows for a state ("running", "finished", ...). */
export function stateLabel(state: TaskState): string {
  return states[state]?.label ?? "unknown";
}

/** The CSS class of a state's badge (`state-running`, ...). */
export function stateBadge(state: TaskState): string {
  return `badge state-${states[state]?.badge ?? "deleted"}`;
}

/** Whether a task in this state may still change: new, queued or running. */
export function isActive(state: TaskState): boolean {
  return state === TaskState.NEW || state === TaskState.QUEUED || state === TaskState.IN_PROGRESS || state === TaskState.BUSY;
}

/** The states the list's filter offers, in the order shown. */
export const filterStates: readonly TaskState[] = [TaskState.IN_PROGRESS, TaskState.QUEUED, TaskState.NEW, TaskState.FINISHED, TaskState.TERMINATED, TaskState.CRASHED];

/** A time of Unix milliseconds as the console shows it (local, to the second); "" for zero. */
export function shownTime(ms: bigint | number): string {
  const value = Number(ms);
  if (value <= 0) return "";
  const date = new Date(value);
  const pad = (n: number): string => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}
