import { chunkFromProto, gapFromProto } from "../client/from-proto.js";
import { specToProto } from "../client/spec-to-proto.js";
import type { RunEvent } from "../core/api.js";
import { DrceError, ErrorCode } from "../domain/errors.js";
import type { NodeResult } from "../domain/placement.js";
import { specDigest } from "../domain/spec-json.js";
import type { TaskSpec } from "../domain/task.js";
import type { TaskView } from "../domain/view.js";
import type { FanOut } from "./fan-out.js";
import { fanOutSignal } from "./fan-out-signal.js";
import type { Forwarding } from "./forwarding.js";
import type { ManagerContext } from "./manager-context.js";
import type { MergedViews } from "./merged-views.js";
import { mergeFanOut, nodeResultOf } from "./node-results.js";
import type { PlacementEntry } from "./placement-record.js";
import { assignIds, forNode } from "./submitted-tree.js";

/**
 * The signal of a node's run call: aborted when one of `signals` aborts before the node's
 * result came (the caller left, the gather time passed: the node then terminates the task),
 * never after it, so that the rest of the node's stream is read to its end rather than cut.
 */
function guardUntilResult(signals: readonly AbortSignal[]): { readonly signal: AbortSignal; resulted(): void; dispose(): void } {
  const controller = new AbortController();
  let settled = false;
  const abort = (event: Event): void => {
    if (!settled) controller.abort((event.target as AbortSignal).reason);
  };
  for (const signal of signals) {
    if (signal.aborted) controller.abort(signal.reason);
    else signal.addEventListener("abort", abort, { once: true });
  }
  return {
    signal: controller.signal,
    resulted: () => void (settled = true),
    dispose() {
      for (const signal of signals) signal.removeEventListener("abort", abort);
      // A run that stops before its result (its reader went away, or it failed) stops the node's run too.
      if (!settled) controller.abort(new DrceError("unavailable", "the run through the manager ended before the node's result"));
    },
  };
}

/** Reads a node's run stream to its end after its result, off the caller's path. */
function drain(iterator: AsyncIterator<unknown>): void {
  void (async () => {
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next());
  })().catch(() => undefined); // after its result, a node's stream holds nothing a caller waits for: its end, or its failure, changes no answer
}

/** The parts an attached run goes through. */
export interface RunParts {
  readonly forwarding: Forwarding;
  readonly fanOut: FanOut;
  readonly views: MergedViews;
}

/** TaskCore's run on a manager (see createManagerRuns). */
export type ManagerRun = (input: TaskSpec, signal: AbortSignal) => AsyncGenerator<RunEvent>;

/**
 * Creates the manager's attached runs (RunTask): a new tree placed and recorded durably,
 * then one node's run stream passed on (opening it is the forwarding), or every node's
 * stream of a fan-out merged in arrival order, each node's result as it ends, and the
 * merged result last.
 */
export function createManagerRuns(context: ManagerContext, parts: RunParts): ManagerRun {
  const { members, record, options } = context;
  const { forwarding, fanOut, views } = parts;

  async function* runOne(entry: PlacementEntry, spec: TaskSpec, signal: AbortSignal): AsyncGenerator<RunEvent> {
    const call = guardUntilResult([signal]);
    try {
      // Opening the stream is the forwarding: a node that provably never got it is replaced.
      let node = entry.nodes[0]!;
      const { entry: final, reply: stream } = await forwarding.forwardOne(entry, spec, async (client) => {
        const iterator = client.runTask({ task: specToProto(forNode(spec)) }, { signal: call.signal })[Symbol.asyncIterator]();
        const first = await iterator.next();
        return { iterator, first };
      });
      node = final.nodes[0]!;
      try {
        for (let next = stream.first; next.done !== true; next = await stream.iterator.next()) {
          const event = next.value.event;
          if (event.case === "accepted") yield { kind: "accepted", view: { ...context.viewAndNote(node, event.value), placedOn: node } };
          else if (event.case === "output") yield { kind: "output", chunk: chunkFromProto(event.value) };
          else if (event.case === "gap") yield { kind: "gap", gap: gapFromProto(event.value) };
          else if (event.case === "result") {
            // The result is the node's last message: the reply ends with it, not with the node's stream.
            call.resulted();
            drain(stream.iterator);
            yield { kind: "result", view: { ...context.viewAndNote(node, event.value), placedOn: node } };
            return;
          }
        }
      } catch (error) {
        if (signal.aborted) throw error;
        throw context.mapNodeFailure(node, spec.id, error);
      }
    } finally {
      call.dispose();
    }
  }

  async function* runAll(entry: PlacementEntry, spec: TaskSpec, signal: AbortSignal): AsyncGenerator<RunEvent> {
    const proto = specToProto(forNode(spec));
    // Events of every node's stream, in arrival order; the generator below yields them.
    const queue: RunEvent[] = [];
    let wake: (() => void) | undefined;
    const push = (event: RunEvent): void => {
      queue.push(event);
      wake?.();
    };
    // Every node's call follows the caller's signal through this one.
    const caller = fanOutSignal(signal);
    const { done } = fanOut.start(
      entry,
      spec,
      async (node, nodeSignal) => {
        const call = guardUntilResult([nodeSignal, caller.signal]);
        const startedAt = performance.now();
        let last: TaskView | undefined;
        try {
          const iterator = context.tasksOf(node).runTask({ task: proto }, { signal: call.signal })[Symbol.asyncIterator]();
          for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) {
            const event = next.value.event;
            if (event.case === "accepted") {
              members.placed(node);
              options.onDispatch?.(node, performance.now() - startedAt);
              last = context.viewAndNote(node, event.value);
            } else if (event.case === "output") push({ kind: "output", chunk: chunkFromProto(event.value), node });
            else if (event.case === "gap") push({ kind: "gap", gap: gapFromProto(event.value), node });
            else if (event.case === "result") {
              // The node's share is over with its result; the end of its stream is read off the fan-out's path.
              call.resulted();
              drain(iterator);
              return nodeResultOf(node, context.viewAndNote(node, event.value));
            }
          }
          if (last === undefined) throw new DrceError("internal", `node ${node} ended the run without a result`);
          return nodeResultOf(node, last);
        } catch (error) {
          const result = fanOut.startFailure(node, spec.id, error, call.signal);
          return last === undefined ? result : { ...result, view: last };
        } finally {
          call.dispose();
        }
      },
      (result) => push({ kind: "node-result", result }),
    );
    let results: NodeResult[] | undefined;
    void done.then((value) => {
      results = value;
      caller.dispose();
      wake?.();
    });
    yield { kind: "accepted", view: mergeFanOut({ id: spec.id, alias: spec.alias, mode: spec.mode, placedAt: entry.placedAt, items: entry.nodes.map((name) => ({ node: name, status: "running" as const, errorCode: 0, errorMessage: "" })) }) };
    for (const item of views.skippedItems(entry)) yield { kind: "node-result", result: item };
    for (;;) {
      const event = queue.shift();
      if (event !== undefined) {
        yield event;
        continue;
      }
      if (results !== undefined) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
    yield { kind: "result", view: mergeFanOut({ id: spec.id, alias: spec.alias, mode: spec.mode, placedAt: entry.placedAt, items: [...results, ...views.skippedItems(entry)] }) };
  }

  return async function* run(input, signal) {
    if (context.shutdown.aborted) throw new DrceError("unavailable", "the manager is shutting down");
    const spec = assignIds(input, new Set(), (id) => record.find(id) !== undefined);
    if (record.find(spec.id) !== undefined) throw new DrceError("exists", `task id ${spec.id} is already used`, { legacyCode: ErrorCode.CreateTask });
    const entry = await forwarding.place(spec, specDigest(spec));
    yield* entry.kind === "all" ? runAll(entry, spec, signal) : runOne(entry, spec, signal);
  };
}
