import { routeHref } from "../router.js";
import { Terminal } from "../terminal.js";
import { isDone, statusClass, statusText } from "./node-progress.js";
import type { RunProgress, RunTracker } from "./run-progress.js";

/** Props of {@link FanOutView}. */
export interface FanOutViewProps {
  /** The run's progress, one item a node. */
  readonly progress: RunProgress;
  /** Where each node's terminal takes its output from. */
  readonly tracker: RunTracker;
}

/**
 * A fan-out's progress: a bar of the nodes done out of those targeted, then each node with
 * its status (exit N, failed, timed out, unreachable, not started, running), the manager's
 * sentence when it did not finish, a link to its task when it holds it under an id of its
 * own, and its output as it arrives.
 */
export function FanOutView(props: FanOutViewProps) {
  const { progress, tracker } = props;
  const done = progress.nodes.filter(isDone).length;
  const targeted = progress.nodes.length;
  return (
    <div class="fan-out">
      <div class="fan-out-bar">
        <progress class="progress" max={Math.max(targeted, 1)} value={done} aria-label="Nodes done" />
        <span class="fan-out-count" role="status">
          {done}/{targeted} nodes done
        </span>
      </div>
      <ul class="fan-out-nodes" aria-label="Nodes of the run">
        {progress.nodes.map((item) => (
          <li class="card fan-out-node" key={item.node} data-node={item.node} data-status={item.status}>
            <h2>
              <span class="mono">{item.node}</span> <span class={`badge ${statusClass(item)}`}>{statusText(item)}</span>
              {item.taskId !== undefined && item.taskId !== progress.taskId && (
                <a class="fan-out-task" href={routeHref({ view: "task", id: item.taskId })}>
                  task {item.taskId}
                </a>
              )}
            </h2>
            {item.message !== undefined && <p class="notice">{item.message}</p>}
            <Terminal label={`output of ${item.node}`} rows={8} onReady={(terminal) => tracker.sink(item.node).attach(terminal)} />
          </li>
        ))}
      </ul>
    </div>
  );
}
