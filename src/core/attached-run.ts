import { DrceError } from "../domain/errors.js";
import { isFinalState } from "../domain/states.js";
import { defaultTerminate, type TaskSpec } from "../domain/task.js";
import type { OutputStreamOptions, RunEvent, SubmitOutcome } from "./api.js";
import type { CoreContext } from "./core-context.js";
import { streamOutputOf } from "./output-stream.js";
import type { TaskCalls } from "./task-calls.js";
import type { TaskRemoval } from "./task-removal.js";
import { viewOf } from "./task-views.js";

/** How an attached run submits its task: async, as the attached reader of every byte. */
export type AttachedSubmit = (spec: TaskSpec) => Promise<SubmitOutcome>;

/**
 * Submits a task and streams it to its caller (RunTask): accepted, every byte of its output,
 * then its result. A caller that goes away (its signal aborts, or it stops reading) has the
 * task terminated.
 */
export async function* attachedRun(
  context: CoreContext,
  parts: { readonly submit: AttachedSubmit; readonly calls: TaskCalls; readonly removal: TaskRemoval },
  input: TaskSpec,
  signal: AbortSignal,
  streamOptions: OutputStreamOptions,
): AsyncGenerator<RunEvent> {
  const outcome = await parts.submit(input);
  const id = outcome.view.status.id;
  const record = context.registry.get(id);
  if (record === undefined) throw new DrceError("not-found", `task ${id} vanished`);
  // Held from before the caller hears of it: a quick task must not be swept while the
  // caller is still being told it was accepted.
  const release = context.hold(record);
  const terminate = (): void => {
    if (isFinalState(record.status.state)) return;
    parts.calls.terminate(id, defaultTerminate).catch((error: unknown) => {
      // A task that ended meanwhile refuses the terminate: nothing is left to stop.
      if (!(error instanceof DrceError && error.kind === "precondition")) context.reportInternal(id, error);
    });
  };
  signal.addEventListener("abort", terminate, { once: true });
  try {
    yield { kind: "accepted", view: outcome.view };
    for await (const event of streamOutputOf(context, record, { stdout: 0, stderr: 0 }, true, signal, !outcome.existing, streamOptions.lendBuffers === true)) {
      if (event.kind !== "result") yield event;
      else {
        const view = await viewOf(context, record, "none", false);
        yield { kind: "result", view };
        if (record.spec.cleanup) await parts.removal.cleanupDelivered(record, view);
      }
    }
  } finally {
    release();
    signal.removeEventListener("abort", terminate);
    // A consumer that stops reading early (cancelled call) terminates the task.
    terminate();
  }
}
