import { ErrorCode } from "../domain/errors.js";
import { isFinalState, TaskMode, TaskState } from "../domain/states.js";
import type { TaskSpec, TaskStatus } from "../domain/task.js";
import type { OutputMode } from "../domain/view.js";
import { createLocalSession } from "../executor/local-session.js";
import { createSshSession } from "../executor/ssh/ssh-session.js";
import type { OutputStreamOptions, SubmitOutcome, TaskCore } from "./api.js";
import { attachedRun } from "./attached-run.js";
import type { CoreContext } from "./core-context.js";
import { timeOf } from "./core-context.js";
import { EventLog } from "./event-log.js";
import { streamOutputOf } from "./output-stream.js";
import type { SessionTable } from "./session-table.js";
import { Slots } from "./slots.js";
import { submitTree } from "./submission.js";
import { createTaskCalls } from "./task-calls.js";
import type { TaskCoreOptions } from "./task-core-options.js";
import { launchTask } from "./task-execution.js";
import { loadTasks } from "./task-loading.js";
import { TaskRegistry } from "./task-registry.js";
import { createTaskRemoval, type DeletionCounts } from "./task-removal.js";
import { shutdownTerminate } from "./terminate-policies.js";

export type { LimitRefusal, ResourceHooks, TaskCoreOptions } from "./task-core-options.js";
export type { DeletionCounts, DeletionReason } from "./task-removal.js";

/** Why running tasks end when the node shuts down. */
const nodeShutDown = Object.freeze({ state: TaskState.Terminated, errorCode: ErrorCode.Canceled, message: "the node shut down" });

/** The task core with the node-level operations its composition root uses. */
export interface DataTaskCore extends TaskCore {
  /** Loads the store and recovers tasks left by a dead node; call once before use. */
  init(): Promise<{ recovered: number; loaded: number }>;
  /** Refuses new tasks, stops the running ones, and waits for them up to `graceMs`. */
  shutdown(graceMs: number): Promise<void>;
  /** The node's task events. */
  readonly events: EventLog;
  /** The node's run slots and queue. */
  readonly slots: Slots;
  /** Number of tasks the node holds. */
  size(): number;
  /** Tasks deleted since start, by reason. */
  deletions(): DeletionCounts;
  /** Faults of the node (not of tasks) reported since start; each was also given to `onInternalError`. */
  internalErrors(): number;
  /** Runs the retention sweep now; resolves to the number of trees it deleted. */
  sweepRetention(): Promise<number>;
}

/** The session runners a core's options give: local always, SSH when it has a runner, replaced by `sessions`. */
function sessionTableOf(options: TaskCoreOptions): SessionTable {
  return {
    local: createLocalSession({ runner: options.localRunner, allowedDirs: options.allowedDirs, runAs: options.runAs }),
    ...(options.sshRunner === undefined ? {} : { ssh: createSshSession(options.sshRunner) }),
    ...options.sessions,
  };
}

/**
 * Creates the task core: the wiring of its concerns (registry, submission, the run, the
 * subtask tree, views, output streams, removal and retention, loading and recovery) over
 * the store and the session runners. Call `init()` once before use.
 */
export function createTaskCore(options: TaskCoreOptions): DataTaskCore {
  const { store } = options;
  const registry = new TaskRegistry();
  const events = new EventLog(options.eventHistory);
  const slots = new Slots(options.maxConcurrent, options.maxQueue);
  let closing = false;
  let initialized = false;
  let internalErrors = 0;

  const publish = (status: TaskStatus): void => {
    const event = events.publish(status, timeOf(status));
    options.onEvent?.(event);
    if (initialized && isFinalState(status.state)) removal.noteFinal(status.id);
  };
  const base: Omit<CoreContext, "hold"> = {
    options,
    store,
    registry,
    slots,
    sessions: sessionTableOf(options),
    inlineBytes: options.inlineOutputBytes ?? 1024 * 1024,
    publish,
    async update(record, changes, point) {
      const stateChanged = changes.state !== undefined && changes.state !== record.status.state;
      record.status = { ...record.status, ...changes };
      await store.saveStatus(record.status, point);
      if (stateChanged) publish(record.status);
    },
    reportInternal(taskId, error) {
      internalErrors++;
      options.onInternalError?.(taskId, error);
    },
  };
  const removal = createTaskRemoval(base);
  const context: CoreContext = { ...base, hold: (record) => removal.hold(record) };
  const calls = createTaskCalls(context, removal);
  const submitWith = (input: TaskSpec, signal: AbortSignal | undefined, output: OutputMode, attached: boolean): Promise<SubmitOutcome> =>
    submitTree(
      context,
      {
        closing: () => closing,
        // The root's own time limits end it with 116; its time_max reaches its subtasks (117)
        // through the deadline its run hands them.
        launch: (record) => launchTask(context, record, Number.POSITIVE_INFINITY),
        cleanupDelivered: (record, view) => removal.cleanupDelivered(record, view),
        accepted: () => removal.retention.poke(),
      },
      input,
      signal,
      output,
      attached,
    );

  return {
    events,
    slots,
    size: () => registry.size,
    deletions: () => removal.deletions(),
    internalErrors: () => internalErrors,
    sweepRetention: () => removal.retention.sweep(),
    async init() {
      const loaded = await loadTasks(context, removal.retention);
      initialized = true;
      void removal.retention.sweep();
      return loaded;
    },
    async shutdown(graceMs) {
      closing = true;
      removal.retention.close();
      const running = [...registry.values()].filter((record) => record.run.live);
      const stopping = running.map((record) => record.run.stop(nodeShutDown, shutdownTerminate(graceMs)));
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
      await Promise.race([Promise.all([...stopping, ...running.map((record) => record.run.done)]), grace]);
      // An idle node exits at once: the grace timer must not hold the process.
      clearTimeout(timer);
    },
    submit: (input, signal, output) => submitWith(input, signal, output ?? "inline", false),
    check: (ref, extended, output) => calls.check(ref, extended, output),
    terminate: (ref, request) => calls.terminate(ref, request),
    fetch: (ref, remove, output) => calls.fetch(ref, remove, output),
    remove: (ref) => calls.remove(ref),
    list() {
      return [...registry.values()].map((record) => record.status).sort((a, b) => b.submittedAt - a.submittedAt);
    },
    run(input, signal, streamOptions: OutputStreamOptions = {}) {
      const submit = (spec: TaskSpec): Promise<SubmitOutcome> => submitWith({ ...spec, mode: TaskMode.Async }, undefined, "none", true);
      return attachedRun(context, { submit, calls, removal }, input, signal, streamOptions);
    },
    streamOutput(ref, offsets, follow, signal, streamOptions: OutputStreamOptions = {}) {
      return streamOutputOf(context, registry.resolve(ref), offsets, follow, signal, false, streamOptions.lendBuffers === true);
    },
    watchEvents(afterSeq, ref, signal) {
      if (ref === "") return events.watch(afterSeq, signal);
      const id = registry.idOf(ref);
      return events.watch(afterSeq, signal, (event) => event.status.id === id || event.status.alias === ref);
    },
    writeInput: (ref, data) => calls.writeInput(ref, data),
    endInput: (ref) => calls.endInput(ref),
  };
}
