import { useEffect, useState } from "preact/hooks";
import { Stream, TaskMode, TaskState, type TaskEvent, type TaskResult } from "../../../gen/drce/v1/task_pb.js";
import { errorText, useApi, type Api } from "../api.js";
import { saveBytes } from "../downloads.js";
import { navigate, routeHref } from "../router.js";
import { isActive, shownTime, stateBadge, stateLabel } from "../task-states.js";
import { TaskOutput } from "./task-output.js";

/** Props of {@link TaskView}. */
export interface TaskViewProps {
  /** The task's id or alias, as the location names it. */
  readonly id: string;
}

/**
 * One task: what it runs, its state history (its events from the start, then live), exit
 * status, usage figures and files, and both output streams (see {@link TaskOutput}), with
 * kill, download of stdout or stderr, and delete. The figures are read again at each event
 * of the task, so the page follows the task without polling.
 */
export function TaskView(props: TaskViewProps) {
  const api = useApi();
  const [result, setResult] = useState<TaskResult | undefined>(undefined);
  const [command, setCommand] = useState("");
  const [history, setHistory] = useState<readonly TaskEvent[]>([]);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState("");
  useEffect(() => {
    const abort = new AbortController();
    const refresh = (): void => {
      api.tasks.getTask({ task: props.id, extended: true }, { signal: abort.signal }).then(
        (reply) => {
          if (reply.result !== undefined) setResult(reply.result);
        },
        (failure: unknown) => {
          if (!abort.signal.aborted) setError(errorText(failure));
        },
      );
    };
    refresh();
    void findCommand(api, props.id, abort.signal).then(setCommand, () => undefined); // The command is shown when known; the rest of the page stands without it.
    const follow = async (): Promise<void> => {
      try {
        for await (const { event } of api.tasks.watchTaskEvents({ task: props.id, fromStart: true }, { signal: abort.signal })) {
          if (event === undefined) continue;
          setHistory((events) => [...events, event]);
          refresh();
        }
      } catch (failure) {
        if (!abort.signal.aborted) setError(`The task's events stopped: ${errorText(failure)}`);
      }
    };
    void follow();
    return () => abort.abort();
  }, [api, props.id]);

  const act = async (name: string, action: () => Promise<unknown>): Promise<void> => {
    setBusy(name);
    setError("");
    try {
      await action();
    } catch (failure) {
      setError(`${name} failed: ${errorText(failure)}`);
    } finally {
      setBusy("");
    }
  };
  const kill = (): Promise<void> => act("Kill", () => api.tasks.terminateTask({ task: props.id }).then((reply) => reply.result !== undefined && setResult(reply.result)));
  const remove = (): Promise<void> =>
    act("Delete", async () => {
      if (!confirm(`Delete task ${props.id} and its output?`)) return;
      await api.tasks.deleteTask({ task: props.id });
      navigate({ view: "tasks" });
    });
  const download = (stream: "stdout" | "stderr"): Promise<void> => act(`Download of ${stream}`, () => downloadStream(api, props.id, stream));
  const downloadFile = (name: string): Promise<void> =>
    act(`Download of ${name}`, async () => {
      const reply = await api.tasks.fetchTask({ task: props.id });
      const file = reply.result?.files.find((candidate) => candidate.name === name);
      if (file === undefined) throw new Error(`the task has no file ${name}`);
      saveBytes(name.split("/").pop() ?? name, [file.data as Uint8Array<ArrayBuffer>]);
    });

  const title = result === undefined ? props.id : result.alias !== "" ? `${result.alias} (${result.id})` : result.id;
  const active = result !== undefined && isActive(result.state);
  return (
    <section aria-labelledby="task-title">
      <p>
        <a href={routeHref({ view: "tasks" })}>← Tasks</a>
      </p>
      <h1 id="task-title">
        Task {title} {result !== undefined && <span class={stateBadge(result.state)} id="task-state">{stateLabel(result.state)}</span>}
      </h1>
      {error !== "" && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {result !== undefined && (
        <>
          <div class="actions">
            <button type="button" class="danger" id="task-kill" disabled={!active || busy !== ""} onClick={() => void kill()}>
              Kill
            </button>
            <button type="button" class="quiet" disabled={busy !== ""} onClick={() => void download("stdout")}>
              Download stdout
            </button>
            <button type="button" class="quiet" disabled={busy !== ""} onClick={() => void download("stderr")}>
              Download stderr
            </button>
            <button type="button" class="danger" id="task-delete" disabled={busy !== ""} onClick={() => void remove()}>
              Delete
            </button>
          </div>
          <div class="grid">
            <Spec result={result} command={command} />
            <Outcome result={result} />
            <Usage result={result} />
            <History events={history} />
          </div>
          {result.files.length > 0 && (
            <div class="card">
              <h2>Files</h2>
              <ul>
                {result.files.map((file) => (
                  <li>
                    <button type="button" class="quiet" onClick={() => void downloadFile(file.name)}>
                      {file.name}
                    </button>
                  </li>
                ))}
              </ul>
            </div>
          )}
          <TaskOutput key={`stdout-${result.id}`} task={result.id} stream="stdout" size={result.stdoutSize} active={active} />
          <TaskOutput key={`stderr-${result.id}`} task={result.id} stream="stderr" size={result.stderrSize} active={active} />
        </>
      )}
    </section>
  );
}

function Spec(props: { readonly result: TaskResult; readonly command: string }) {
  const { result } = props;
  return (
    <div class="card">
      <h2>Spec</h2>
      <dl class="facts">
        <dt>Id</dt>
        <dd>{result.id}</dd>
        <dt>Alias</dt>
        <dd>{result.alias || "—"}</dd>
        <dt>Command</dt>
        <dd class="mono" id="task-command">{props.command || "—"}</dd>
        <dt>Mode</dt>
        <dd>{result.mode === TaskMode.ASYNC ? "async" : "sync"}</dd>
        <dt>Node</dt>
        <dd>{[result.node, result.placedOn].filter((part) => part !== "").join(" · ") || "—"}</dd>
        {result.parentId !== "" && (
          <>
            <dt>Parent</dt>
            <dd>
              <a href={routeHref({ view: "task", id: result.parentId })}>{result.parentId}</a>
            </dd>
          </>
        )}
        {result.subtasks.length > 0 && (
          <>
            <dt>Subtasks</dt>
            <dd>
              {result.subtasks.map((sub) => (
                <a href={routeHref({ view: "task", id: sub.id })}>{sub.id} </a>
              ))}
            </dd>
          </>
        )}
      </dl>
    </div>
  );
}

function Outcome(props: { readonly result: TaskResult }) {
  const { result } = props;
  const finished = !isActive(result.state);
  return (
    <div class="card">
      <h2>Outcome</h2>
      <dl class="facts">
        <dt>State</dt>
        <dd>{stateLabel(result.state)}</dd>
        <dt>Exit status</dt>
        <dd id="task-exit">{finished && result.state !== TaskState.NEW ? String(result.exitStatus) : "—"}</dd>
        {result.signal !== "" && (
          <>
            <dt>Signal</dt>
            <dd>{result.signal}</dd>
          </>
        )}
        {result.errorCode !== 0 && (
          <>
            <dt>Error</dt>
            <dd class="error">
              {result.errorCode}: {result.errorMessage}
            </dd>
          </>
        )}
        <dt>Process</dt>
        <dd>{result.pid > 0 ? result.pid : "—"}</dd>
        <dt>Started</dt>
        <dd>{shownTime(result.startedAtMs) || "—"}</dd>
        <dt>Finished</dt>
        <dd>{shownTime(result.finishedAtMs) || "—"}</dd>
        <dt>Ran</dt>
        <dd>{(Number(result.timeMs) / 1000).toFixed(2)} s</dd>
        <dt>Output</dt>
        <dd>
          {String(result.stdoutSize)} B stdout{result.stdoutTruncated ? " (cut)" : ""}, {String(result.stderrSize)} B stderr{result.stderrTruncated ? " (cut)" : ""}
        </dd>
      </dl>
    </div>
  );
}

function Usage(props: { readonly result: TaskResult }) {
  const figures = Object.entries(props.result.fields).sort(([a], [b]) => a.localeCompare(b));
  return (
    <div class="card">
      <h2>Usage</h2>
      {figures.length === 0 ? (
        <p class="notice">No figures yet.</p>
      ) : (
        <dl class="facts" id="task-usage">
          {figures.map(([name, value]) => (
            <>
              <dt>{name}</dt>
              <dd>{Number.isInteger(value) ? String(value) : value.toFixed(3)}</dd>
            </>
          ))}
        </dl>
      )}
    </div>
  );
}

function History(props: { readonly events: readonly TaskEvent[] }) {
  return (
    <div class="card">
      <h2>State history</h2>
      {props.events.length === 0 ? (
        <p class="notice">No events kept.</p>
      ) : (
        <ol class="history" id="task-history">
          {props.events.map((event) => (
            <li>
              <span class={stateBadge(event.state)}>{stateLabel(event.state)}</span> {shownTime(event.timeUnixMs)}
              {event.errorCode !== 0 ? ` · error ${event.errorCode}: ${event.errorMessage}` : ""}
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

/** The task's command line, from the node's task list (results do not carry it). */
async function findCommand(api: Api, id: string, signal: AbortSignal): Promise<string> {
  const { result } = await api.tasks.getTask({ task: id }, { signal });
  const { tasks } = await api.tasks.listTasks({ states: result === undefined ? [] : [result.state] }, { signal });
  return tasks.find((task) => task.id === result?.id)?.command ?? "";
}

/** Saves one output stream of a task as a file, read from offset 0 in chunks (never as one message). */
async function downloadStream(api: Api, id: string, stream: "stdout" | "stderr"): Promise<void> {
  const parts: Uint8Array<ArrayBuffer>[] = [];
  const far = 1n << 62n;
  const offsets = stream === "stdout" ? { stdoutOffset: 0n, stderrOffset: far } : { stdoutOffset: far, stderrOffset: 0n };
  for await (const reply of api.tasks.streamTaskOutput({ task: id, follow: false, ...offsets })) {
    const event = reply.event;
    if (event.case === "output" && event.value.stream === (stream === "stdout" ? Stream.STDOUT : Stream.STDERR)) parts.push(event.value.data as Uint8Array<ArrayBuffer>);
  }
  saveBytes(`${id}.${stream}`, parts, "text/plain");
}
