import { fromStoredSpec } from "../domain/spec-json.js";
import { isFinalState } from "../domain/states.js";
import { taskSpec } from "../domain/task.js";
import type { CoreContext } from "./core-context.js";
import { recoverTask } from "./recovery.js";
import type { Retention } from "./retention.js";
import { sessionRunnerFor } from "./session-table.js";
import { StoredTaskRecord } from "./stored-task-record.js";
import type { TaskRecord } from "./task-registry.js";
import { streamNames } from "./task-views.js";

/**
 * Loads the tasks the store holds into the registry at start-up: a task a dead node left
 * unfinished is recovered as crashed (its orphan killed by its session runner); finished
 * trees join the retention queue in the order they finished. Each is kept as its status
 * alone (see {@link StoredTaskRecord}): only an unfinished task's request is read here, for
 * its recovery. Resolves to the numbers of tasks recovered and loaded.
 */
export async function loadTasks(context: CoreContext, retention: Retention): Promise<{ recovered: number; loaded: number }> {
  const { store, registry } = context;
  const loaded = await store.load({ requests: "unfinished" });
  let recovered = 0;
  for (const { status, request } of loaded) {
    let current = status;
    if (!isFinalState(status.state)) {
      const spec = request !== undefined ? fromStoredSpec(request.spec) : taskSpec({ id: status.id, command: status.command });
      current = await recoverTask(status, store, (left) => sessionRunnerFor(context.sessions, spec).reap(left));
      // A node on a full disk still starts and serves what it has: a recovered state that
      // cannot be stored is reported, kept in memory, and found again on the next start.
      const saved = await store.saveStatus(current).then(
        () => true,
        (error: unknown) => {
          context.reportInternal(status.id, error);
          return false;
        },
      );
      // The merged output is durable with the status: the rings are not needed any more
      // (a status that could not be saved keeps them for the next start's merge).
      if (saved) for (const stream of streamNames) store.removeOutputTail(current.id, stream);
      recovered++;
    }
    registry.addLoaded(new StoredTaskRecord(current, store));
    if (current !== status) context.publish(current);
  }
  // Finished trees join the retention queue in the order they finished; the first sweep
  // applies the bounds to what the last run left, while the node starts serving.
  const lastFinish = (record: TaskRecord): number => Math.max(record.status.finishedAt || record.status.submittedAt, ...registry.subtasksOf(record).map(lastFinish));
  const finishedTrees: { id: string; at: number }[] = [];
  for (const record of registry.values()) {
    if (registry.rootOf(record) === record && registry.treeFinal(record)) finishedTrees.push({ id: record.status.id, at: lastFinish(record) });
  }
  finishedTrees.sort((a, b) => a.at - b.at);
  for (const { id, at } of finishedTrees) retention.finished(id, at);
  return { recovered, loaded: loaded.length };
}
