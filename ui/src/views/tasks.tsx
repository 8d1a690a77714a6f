import { create } from "@bufbuild/protobuf";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { TaskState, TaskSummarySchema, type TaskEvent, type TaskSummary } from "../../../gen/drce/v1/task_pb.js";
import { errorText, useApi, useNode, type Api } from "../api.js";
import { navigate, routeHref } from "../router.js";
import { filterStates, isActive, shownTime, stateBadge, stateLabel } from "../task-states.js";

/** Height of one row of the list, in pixels: the list draws only the rows in view. */
const rowHeight = 34;
/** Rows drawn above and below the visible ones, so that a fast scroll shows no blank. */
const overscan = 8;

/**
 * The task list, newest first: loaded once with `ListTasks`, then kept current by
 * `WatchTaskEvents` (no polling): a state change updates its row, a new task gets a row, a
 * deleted one loses it. Filtered by state (on the node, with the list's own filter) and by
 * alias or id and command text, and on a manager by node (in the page). Only the rows in view are drawn, so 10,000 tasks
 * cost what 30 do. A row opens its task on a click or on Enter.
 */
export function TasksView() {
  const api = useApi();
  const manager = useNode().role === "manager";
  const [state, setState] = useState<TaskState | undefined>(undefined);
  const [text, setText] = useState("");
  const [nodeName, setNodeName] = useState("");
  const { tasks, error, live } = useLiveTasks(api, state);
  const shown = useMemo(() => {
    const needle = text.trim().toLowerCase();
    const onNode = nodeName.trim();
    if (needle === "" && onNode === "") return tasks;
    return tasks.filter(
      (task) =>
        (needle === "" || task.alias.toLowerCase().includes(needle) || task.id.toLowerCase().includes(needle) || task.command.toLowerCase().includes(needle)) &&
        (onNode === "" || task.nodes.some((name) => name === onNode)),
    );
  }, [tasks, text, nodeName]);
  return (
    <section aria-labelledby="tasks-title">
      <h1 id="tasks-title">Tasks</h1>
      <div class="toolbar" role="search">
        <label>
          State
          <select id="filter-state" value={state === undefined ? "" : String(state)} onChange={(event) => {
            const value = (event.target as HTMLSelectElement).value;
            setState(value === "" ? undefined : (Number(value) as TaskState));
          }}>
            <option value="">all</option>
            {filterStates.map((candidate) => (
              <option value={String(candidate)}>{stateLabel(candidate)}</option>
            ))}
          </select>
        </label>
        <label>
          Alias, id or command
          <input id="filter-text" type="search" value={text} placeholder="nightly-backup" onInput={(event) => setText((event.target as HTMLInputElement).value)} />
        </label>
        {manager && (
          <label>
            Node
            <input id="filter-node" type="search" value={nodeName} placeholder="node name" onInput={(event) => setNodeName((event.target as HTMLInputElement).value)} />
          </label>
        )}
        <span class="notice" aria-live="polite" id="tasks-count">
          {tasks === loading ? "loading…" : `${shown.length} of ${tasks.length} tasks`}
          {live ? "" : " (not live: reconnecting)"}
        </span>
      </div>
      {error !== "" && <p class="error" role="alert">{error}</p>}
      <TaskRows tasks={shown} nodes={manager} />
    </section>
  );
}

const loading: TaskSummary[] = [];

/** The list's rows, drawn only where they are in view of the scroller. */
function TaskRows(props: { readonly tasks: readonly TaskSummary[]; readonly nodes: boolean }) {
  const scroller = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(600);
  useEffect(() => {
    const element = scroller.current;
    if (element === null) return undefined;
    const measure = (): void => setHeight(element.clientHeight);
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(element);
    return () => observer.disconnect();
  }, []);
  const first = Math.max(0, Math.floor(top / rowHeight) - overscan);
  const last = Math.min(props.tasks.length, Math.ceil((top + height) / rowHeight) + overscan);
  const visible = props.tasks.slice(first, last);
  return (
    <div class="scroller" ref={scroller} onScroll={(event) => setTop((event.target as HTMLElement).scrollTop)}>
      <table class="list" aria-label="Tasks" aria-rowcount={props.tasks.length + 1}>
        <colgroup>
          <col style={{ width: "9em" }} />
          <col style={{ width: "7.5em" }} />
          <col />
          {props.nodes && <col class="wide" style={{ width: "9em" }} />}
          <col class="wide" style={{ width: "12.5em" }} />
          <col class="wide" style={{ width: "4em" }} />
        </colgroup>
        <thead>
          <tr>
            <th scope="col">Task</th>
            <th scope="col">State</th>
            <th scope="col">Command</th>
            {props.nodes && (
              <th scope="col" class="wide">
                Nodes
              </th>
            )}
            <th scope="col" class="wide">Started</th>
            <th scope="col" class="wide">Exit</th>
          </tr>
        </thead>
        <tbody>
          {first > 0 && <Spacer rows={first} columns={props.nodes ? 6 : 5} />}
          {visible.map((task, index) => (
            <tr
              key={task.id}
              tabindex={0}
              aria-rowindex={first + index + 2}
              data-task={task.id}
              onClick={() => navigate({ view: "task", id: task.id })}
              onKeyDown={(event) => {
                if (event.key === "Enter") navigate({ view: "task", id: task.id });
              }}
            >
              <td>
                <a href={routeHref({ view: "task", id: task.id })} tabindex={-1}>
                  {task.alias !== "" ? task.alias : task.id}
                </a>
              </td>
              <td>
                <span class={stateBadge(task.state)}>{stateLabel(task.state)}</span>
              </td>
              <td class="mono" title={task.command}>
                {task.command}
              </td>
              {props.nodes && (
                <td class="wide" title={task.nodes.join(", ")}>
                  {task.nodes.join(", ")}
                </td>
              )}
              <td class="wide">{shownTime(task.startedAtMs)}</td>
              <td class="wide">{isActive(task.state) ? "" : String(task.exitStatus)}</td>
            </tr>
          ))}
          {last < props.tasks.length && <Spacer rows={props.tasks.length - last} columns={props.nodes ? 6 : 5} />}
        </tbody>
      </table>
      {props.tasks.length === 0 && <p class="notice empty">No tasks.</p>}
    </div>
  );
}

/** Stands for rows not drawn, so that the scroll bar shows the whole list. */
function Spacer(props: { readonly rows: number; readonly columns: number }) {
  // A row without a cell has no height in a table; one cell across the columns holds it.
  return (
    <tr aria-hidden="true" class="spacer">
      <td colSpan={props.columns} style={{ height: `${props.rows * rowHeight}px` }} />
    </tr>
  );
}

/**
 * The node's tasks in `state` (all when undefined), newest first, kept current by the node's
 * event stream. The watch starts before the list is read, and its events are applied to the
 * list once it is in, so that no change between the two is missed.
 */
function useLiveTasks(api: Api, state: TaskState | undefined): { tasks: TaskSummary[]; error: string; live: boolean } {
  const [tasks, setTasks] = useState<TaskSummary[]>(loading);
  const [error, setError] = useState("");
  const [live, setLive] = useState(true);
  useEffect(() => {
    const abort = new AbortController();
    let list: TaskSummary[] | undefined;
    const early: TaskEvent[] = [];
    let filling = false;
    const publish = (): void => setTasks(list === undefined ? loading : [...list]);
    const apply = (event: TaskEvent): void => {
      if (list === undefined) {
        early.push(event);
        return;
      }
      applyEvent(list, event, state);
      // Through a manager, an event of a fanned-out task carries one node's state; the task's
      // own (merged) state is the manager's to say.
      const row = list.find((task) => task.id === event.id);
      if (event.node !== undefined && row !== undefined && row.nodes.length > 1) mergedState(event.id);
    };
    const mergedState = (id: string): void => {
      api.tasks.getTask({ task: id }, { signal: abort.signal }).then(
        ({ result }) => {
          const index = list?.findIndex((task) => task.id === id) ?? -1;
          if (result === undefined || list === undefined || index < 0) return;
          list[index] = { ...list[index]!, state: result.state, exitStatus: result.exitStatus, finishedAtMs: result.finishedAtMs };
          publish();
        },
        () => undefined, // A task deleted meanwhile leaves the list at its own event.
      );
    };
    // A task that appears through an event has no command yet: the node's list is read again
    // for the states those tasks are in now (new and running ones: a short list), one read at
    // a time, at the events of rows that lack their command.
    const fillCommands = (): void => {
      if (filling || list === undefined) return;
      const lacking = list.filter((task) => task.command === "");
      if (lacking.length === 0) return;
      filling = true;
      const wanted = [...new Set(lacking.map((task) => (isActive(task.state) ? [TaskState.NEW, TaskState.QUEUED, TaskState.IN_PROGRESS] : [task.state])).flat())];
      api.tasks.listTasks({ states: wanted }, { signal: abort.signal }).then(
        (reply) => {
          filling = false;
          const listed = new Map(reply.tasks.map((task) => [task.id, task]));
          for (const [index, task] of (list ?? []).entries()) {
            const found = listed.get(task.id);
            if (task.command === "" && found !== undefined) list![index] = { ...task, command: found.command, nodes: found.nodes };
          }
          // A task that left its state meanwhile is looked for again at its next event.
          publish();
        },
        () => void (filling = false), // The page left or the node is gone; the watch says which.
      );
    };
    let afterSeq = 0n;
    const watch = async (): Promise<void> => {
      for (;;) {
        try {
          for await (const { event } of api.tasks.watchTaskEvents({ afterSeq }, { signal: abort.signal })) {
            if (event === undefined) continue;
            afterSeq = event.seq;
            setLive(true);
            apply(event);
            if (list !== undefined) {
              publish();
              fillCommands();
            }
          }
        } catch (failure) {
          if (abort.signal.aborted) return;
          setLive(false);
          setError(`The live updates stopped: ${errorText(failure)}`);
        }
        if (abort.signal.aborted) return;
        // The node closed the stream (a restart): follow again from the last event seen.
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    };
    void watch();
    api.tasks.listTasks({ states: state === undefined ? [] : [state] }, { signal: abort.signal }).then(
      (reply) => {
        list = reply.tasks;
        for (const event of early.splice(0)) applyEvent(list, event, state);
        setError("");
        publish();
      },
      (failure: unknown) => {
        if (!abort.signal.aborted) setError(`The task list could not be read: ${errorText(failure)}`);
      },
    );
    return () => abort.abort();
  }, [api, state]);
  return { tasks, error, live };
}

/**
 * Applies one event to the list in place: a known task takes the new state (a final state is
 * never undone by an older event), a new one is added at the top, a deleted one is removed,
 * and a task leaving the filtered state leaves the list. Returns whether a task was added.
 */
function applyEvent(list: TaskSummary[], event: TaskEvent, filter: TaskState | undefined): boolean {
  const index = list.findIndex((task) => task.id === event.id);
  const matches = filter === undefined || event.state === filter;
  if (event.state === TaskState.DELETED || (!matches && index >= 0)) {
    if (index >= 0) list.splice(index, 1);
    return false;
  }
  if (index >= 0) {
    const known = list[index]!;
    if (!isActive(known.state) && isActive(event.state)) return false;
    list[index] = { ...known, state: event.state, exitStatus: event.exitStatus, finishedAtMs: isActive(event.state) ? 0n : event.timeUnixMs };
    return false;
  }
  if (!matches) return false;
  list.unshift(create(TaskSummarySchema, { id: event.id, alias: event.alias, state: event.state, legacyState: event.legacyState, exitStatus: event.exitStatus, startedAtMs: event.timeUnixMs, nodes: event.node === undefined ? [] : [event.node] }));
  return true;
}
