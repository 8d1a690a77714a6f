import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { TaskMode } from "../../../gen/drce/v1/task_pb.js";
import type { Api } from "../api.js";
import { routeHref } from "../router.js";
import { Terminal } from "../terminal.js";
import { failureText } from "./failure-text.js";
import { FanOutView } from "./fan-out-view.js";
import { endText } from "./node-progress.js";
import { createRunTracker, startingProgress, type RunEvent, type RunProgress } from "./run-progress.js";
import type { RunRequest } from "./run-spec.js";

/** Props of {@link RunOutcome}. */
export interface RunOutcomeProps {
  /** The node's clients. */
  readonly api: Api;
  /** The task the form asked for, and whether it fans out. */
  readonly request: RunRequest;
  /** Called once the run's call has ended (its result, or a failure), so the form can run again. */
  readonly onEnded: () => void;
}

/**
 * One run started from the form, followed to its end. A sync run is attached (`RunTask`):
 * output is shown live, then the exit status; leaving the view or pressing Stop cancels the
 * call, which terminates the task. An async run is submitted (`SubmitTask`) and links to its
 * detail view; a fanned-out one is also followed per node (`StreamTaskOutput`). A fan-out
 * shows its per-node progress.
 */
export function RunOutcome(props: RunOutcomeProps) {
  const { api, request, onEnded } = props;
  const tracker = useMemo(() => createRunTracker(), []);
  const [progress, setProgress] = useState<RunProgress>(() => startingProgress(request.fanOut));
  const [call] = useState(() => new AbortController());
  const [running, setRunning] = useState(true);
  const top = useRef<HTMLDivElement>(null);
  useEffect(() => {
    // The outcome opens below the form, often past the screen's end; xterm.js paints only
    // terminals on screen, so the run is brought into view as it starts.
    top.current?.scrollIntoView({ block: "start" });
    const apply = (event: RunEvent, node: string | undefined): void => setProgress((current) => tracker.apply(current, event, node));
    const follow = async (): Promise<void> => {
      if (request.spec.mode === TaskMode.ASYNC) {
        const submitted = await api.tasks.submitTask({ task: request.spec }, { signal: call.signal });
        if (submitted.result === undefined) return;
        apply({ case: "accepted", value: submitted.result }, undefined);
        if (submitted.result.nodes.length === 0) return;
        // The task's detail view has a single task's output; a fan-out's progress is shown here.
        for await (const message of api.tasks.streamTaskOutput({ task: submitted.result.id, follow: true }, { signal: call.signal })) {
          if (message.event.case !== undefined) apply(message.event, message.node);
        }
        return;
      }
      for await (const message of api.tasks.runTask({ task: request.spec }, { signal: call.signal })) {
        if (message.event.case !== undefined) apply(message.event, message.node);
      }
    };
    follow().then(
      () => undefined,
      (error: unknown) => {
        if (!call.signal.aborted) setProgress((current) => ({ ...current, error: failureText(error) }));
      },
    ).finally(() => {
      setRunning(false);
      onEnded();
    });
    return () => call.abort();
  }, []);
  const async = request.spec.mode === TaskMode.ASYNC;
  return (
    <div class="run-outcome" aria-live="polite" ref={top}>
      {progress.taskId !== undefined && (
        <p class="run-task">
          Task{" "}
          <a href={routeHref({ view: "task", id: progress.taskId })} data-task-link>
            {progress.taskId}
          </a>
          {progress.placedOn !== undefined && !progress.fanOut && (
            <>
              {" "}
              on node <strong>{progress.placedOn}</strong>
            </>
          )}
          {async && !progress.fanOut && " was submitted: its detail view follows it."}
        </p>
      )}
      {running && !async && (
        <div class="actions">
          <button type="button" class="danger" onClick={() => call.abort()}>
            Stop
          </button>
        </div>
      )}
      {progress.fanOut ? <FanOutView progress={progress} tracker={tracker} /> : !async && <Terminal label="output of the run" onReady={(terminal) => tracker.sink("").attach(terminal)} />}
      {progress.result !== undefined && !progress.fanOut && !async && (
        <p class="run-end" role="status">
          {endText(progress.result)}
        </p>
      )}
      {call.signal.aborted && progress.result === undefined && <p class="notice">The run was stopped: its task is terminated.</p>}
      {progress.error !== undefined && (
        <p class="error" role="alert">
          {progress.error}
        </p>
      )}
    </div>
  );
}
