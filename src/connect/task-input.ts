import { Code, ConnectError } from "@connectrpc/connect";
import type { SendTaskInputRequest } from "../../gen/drce/v1/task_service_pb.js";
import type { TaskCore } from "../core/api.js";
import { DrceError, ErrorCode } from "../domain/errors.js";
import { isFinalState } from "../domain/states.js";

/** Options of {@link receiveTaskInput}. */
export interface TaskInputOptions {
  readonly core: TaskCore;
  /** Milliseconds the first message (the one naming the task) may take to arrive. */
  readonly firstMessageMs: number;
  /** The call's signal: it fires when the call ends, for whatever reason. */
  readonly signal: AbortSignal;
}

/** What a SendTaskInput call wrote: the task it named ("" when the call sent nothing) and the bytes. */
export interface TaskInputOutcome {
  readonly task: string;
  readonly written: number;
}

/**
 * Writes a SendTaskInput call's messages to its task's stdin, closing the stdin when the
 * caller ends its stream. The call is exempt from the node's request-body bound (its body is
 * a task's stdin and lasts as long as the caller has input), so it is bounded here instead:
 * - the first message must arrive within `firstMessageMs`, else the call is
 *   DeadlineExceeded (legacy error 103): a caller that opens the stream and sends nothing
 *   does not hold it;
 * - once the task is final its stdin takes nothing more, and a stream still open then ends
 *   at once with FailedPrecondition (legacy error 113, as a write to an ended task), instead
 *   of being held until the caller lets go.
 */
export async function receiveTaskInput(requests: AsyncIterable<SendTaskInputRequest>, options: TaskInputOptions): Promise<TaskInputOutcome> {
  const input = requests[Symbol.asyncIterator]();
  const first = await firstWithin(input.next(), options.firstMessageMs);
  if (first.done === true) return { task: "", written: 0 };
  const task = first.value.task;
  if (task === "") throw new ConnectError("task (an id or alias) is required", Code.InvalidArgument);

  const watching = new AbortController();
  const stop = (): void => watching.abort();
  options.signal.addEventListener("abort", stop, { once: true });
  try {
    const final = taskFinal(options.core, task, watching.signal);
    final.catch(() => undefined); // handled by the race below, which ends the call with it (an unknown task is NotFound)
    let written = 0;
    for (let request = first.value; ; ) {
      if (request.data.length > 0) {
        await options.core.writeInput(task, request.data);
        written += request.data.length;
      }
      const next = await Promise.race([input.next(), final.then(() => undefined)]);
      if (next === undefined) throw new DrceError("precondition", `task ${task} has ended: its stdin takes no more input`, { legacyCode: ErrorCode.Terminate });
      if (next.done === true) break;
      request = next.value;
    }
    await options.core.endInput(task);
    return { task, written };
  } finally {
    options.signal.removeEventListener("abort", stop);
    watching.abort();
  }
}

/** The first message, or DeadlineExceeded when it does not come within `ms`. */
async function firstWithin<T>(next: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const metadata = new Headers({ "drce-error-code": String(ErrorCode.BadInput) });
      reject(new ConnectError(`no message naming the task arrived within ${ms} ms`, Code.DeadlineExceeded, metadata));
    }, ms);
  });
  try {
    return await Promise.race([next, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Resolves once the task is final; rejects when it is unknown. It listens to the event log
 * before it checks the state, so a task that turns final between the two is not missed.
 */
async function taskFinal(core: TaskCore, task: string, signal: AbortSignal): Promise<void> {
  const events = core.watchEvents(0, task, signal)[Symbol.asyncIterator]();
  // Starting the watch subscribes it; its first result is awaited after the check.
  const nextEvent = events.next();
  try {
    const view = await core.check(task, false, "none");
    if (isFinalState(view.status.state)) return;
    for (let event = await nextEvent; event.done !== true; event = await events.next()) {
      if (isFinalState(event.value.status.state)) return;
    }
    // The watch ends only when the call has ended: no one waits for this any more.
  } finally {
    void events.return?.(undefined);
  }
}
