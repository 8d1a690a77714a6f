import { errorFromConnect } from "../client/error-from-connect.js";
import { chunkFromProto, gapFromProto } from "../client/from-proto.js";
import type { OutputEvent } from "../core/api.js";
import { DrceError, ErrorCode } from "../domain/errors.js";
import type { NodeResult } from "../domain/placement.js";
import type { StreamName } from "../domain/task.js";
import type { TaskView } from "../domain/view.js";
import type { ManagerContext } from "./manager-context.js";
import { fanOutSignal } from "./fan-out-signal.js";
import type { MergedViews } from "./merged-views.js";
import { failedResult, mergeFanOut, nodeResultOf, unreachableResult } from "./node-results.js";
import type { PlacementEntry } from "./placement-record.js";

/** TaskCore's streamOutput on a manager (see createManagerStreams). */
export type ManagerStreamOutput = (ref: string, offsets: Readonly<Record<StreamName, number>>, follow: boolean, signal: AbortSignal) => AsyncGenerator<OutputEvent>;

/**
 * Creates the manager's output streams (StreamTaskOutput): a single-node task's stream passed
 * on from its node, a fanned-out task's streams of every node merged in arrival order, each
 * node's result as its stream ends (a node that fails is its item), and the merged result last.
 */
export function createManagerStreams(context: ManagerContext, views: MergedViews): ManagerStreamOutput {
  const { states } = context;

  async function* streamOne(node: string, id: string, offsets: Readonly<Record<StreamName, number>>, follow: boolean, signal: AbortSignal): AsyncGenerator<OutputEvent> {
    try {
      for await (const message of context.tasksOf(node).streamTaskOutput({ task: id, stdoutOffset: BigInt(offsets.stdout), stderrOffset: BigInt(offsets.stderr), follow }, { signal })) {
        const event = message.event;
        if (event.case === "output") yield { kind: "output", chunk: chunkFromProto(event.value) };
        else if (event.case === "gap") yield { kind: "gap", gap: gapFromProto(event.value) };
        else if (event.case === "result") yield { kind: "result", view: { ...context.viewAndNote(node, event.value), placedOn: node } };
      }
    } catch (error) {
      if (signal.aborted) throw error;
      if (error instanceof DrceError) throw error;
      throw context.mapNodeFailure(node, id, error);
    }
  }

  async function* streamAll(entry: PlacementEntry, id: string, offsets: Readonly<Record<StreamName, number>>, follow: boolean, signal: AbortSignal): AsyncGenerator<OutputEvent> {
    const queue: OutputEvent[] = [];
    let wake: (() => void) | undefined;
    const push = (event: OutputEvent): void => {
      queue.push(event);
      wake?.();
    };
    const one = async (node: string, signal: AbortSignal): Promise<NodeResult> => {
      let last: TaskView | undefined;
      try {
        for await (const event of streamOne(node, id, offsets, follow, signal)) {
          if (event.kind === "result") last = event.view;
          else if (event.kind === "output" || event.kind === "gap") push({ ...event, node });
        }
        return last === undefined ? failedResult(node, ErrorCode.InternalFo, "the stream ended without a result") : nodeResultOf(node, last);
      } catch (error) {
        const mapped = error instanceof DrceError ? error : errorFromConnect(error);
        if (mapped.kind === "unavailable") return unreachableResult(node, mapped.message, states.view(node, id));
        return failedResult(node, mapped.legacyCode, mapped.message, states.view(node, id));
      }
    };
    let results: NodeResult[] | undefined;
    // Every node's stream follows the caller's signal through this one.
    const caller = fanOutSignal(signal);
    void Promise.all(
      entry.nodes.map(async (node) => {
        const result = await one(node, caller.signal);
        push({ kind: "node-result", result });
        return result;
      }),
    ).then((value) => {
      results = value;
      caller.dispose();
      wake?.();
    });
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
    yield { kind: "result", view: mergeFanOut({ id, alias: id === entry.id ? entry.alias : "", mode: entry.mode, placedAt: entry.placedAt, items: [...results, ...views.skippedItems(entry)] }) };
  }

  return async function* streamOutput(ref, offsets, follow, signal) {
    const entry = context.entryOf(ref);
    const id = context.idOf(entry, ref);
    yield* entry.kind === "all" ? streamAll(entry, id, offsets, follow, signal) : streamOne(entry.nodes[0]!, id, offsets, follow, signal);
  };
}
