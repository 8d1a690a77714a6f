import { TerminateAlgorithm } from "../../gen/drce/v1/task_service_pb.js";
import { errorFromConnect } from "../client/error-from-connect.js";
import type { TaskCore } from "../core/api.js";
import { DrceError, ErrorCode } from "../domain/errors.js";
import { isFinalState, TaskState } from "../domain/states.js";
import type { TerminateOptions } from "../domain/task.js";
import type { TaskView } from "../domain/view.js";
import type { InputPipes } from "./input-pipes.js";
import type { ManagerContext } from "./manager-context.js";
import type { MergedViews } from "./merged-views.js";
import type { NodeCalls } from "./node-calls.js";
import type { PlacementEntry } from "./placement-record.js";
import { withRemoteOutputs } from "./remote-output.js";

/** The calls on an existing task that the manager routes by id or alias to the node(s) holding it. */
export type RoutedCalls = Pick<TaskCore, "check" | "terminate" | "fetch" | "remove" | "watchEvents" | "writeInput" | "endInput">;

/** The parts routed calls go through. */
export interface RoutedCallParts {
  readonly calls: NodeCalls;
  readonly views: MergedViews;
  readonly pipes: InputPipes;
}

/**
 * Creates the routed calls: each finds the task's placement entry (an unknown id or alias is
 * "not-found") and calls the node holding it, or every node of a fan-out, merging their items.
 * A task deleted on its node(s) is let go from the record too.
 */
export function createRoutedCalls(context: ManagerContext, parts: RoutedCallParts): RoutedCalls {
  const { record, states, fanOuts } = context;
  const { calls, views, pipes } = parts;
  const { onNode, wholeOutput, streamedOutput } = calls;

  /** A fanned-out task's view with every node's whole output, read from the nodes as a legacy reply is sent. */
  const wholeOutputs = (view: TaskView, id: string, released?: () => Promise<void>): Promise<TaskView> =>
    withRemoteOutputs(view, id, { clientOf: (node) => context.tasksOf(node), gather: (node, nodeView) => wholeOutput(node, id, nodeView), logger: context.logger, ...(released === undefined ? {} : { released }) });

  /** Deletes a fanned-out task on its nodes; its entry goes once every node answered. */
  const removeAll = async (entry: PlacementEntry, id: string): Promise<TaskView> => {
    const view = await views.fanOutCall(entry, id, async (client) => (await client.deleteTask({ task: id })).result);
    if (id === entry.id && view.nodes?.every((item) => item.view !== undefined || item.status === "not-started") === true) await record.remove(entry.id);
    return view;
  };

  return {
    async check(ref, extended, output = "inline") {
      const entry = context.entryOf(ref);
      const id = context.idOf(entry, ref);
      if (entry.kind === "all") {
        const view = await views.fanOutCall(entry, id, async (client) => (await client.getTask({ task: id, extended })).result);
        return output === "whole" ? wholeOutputs(view, id) : view;
      }
      const node = entry.nodes[0]!;
      const view = context.viewAndNote(node, (await onNode(node, id, (client) => client.getTask({ task: id, extended }))).result);
      return { ...(output === "whole" ? await streamedOutput(node, id, view) : view), placedOn: node };
    },
    async terminate(ref, terminateOptions: TerminateOptions) {
      const entry = context.entryOf(ref);
      const id = context.idOf(entry, ref);
      const request = { task: id, alg: terminateOptions.alg === 2 ? TerminateAlgorithm.SIGNAL : TerminateAlgorithm.TERM_THEN_KILL, delayMs: terminateOptions.delayMs, repeat: terminateOptions.repeat, signal: terminateOptions.signal, cleanup: terminateOptions.cleanup };
      if (entry.kind === "all") {
        // A fan-out still starting nodes starts no more.
        if (id === entry.id) fanOuts.get(entry.id)?.stop.abort();
        let refusedAll = true;
        const view = await views.fanOutCall(
          entry,
          id,
          async (client) => {
            try {
              return (await client.terminateTask(request)).result;
            } catch (error) {
              const mapped = errorFromConnect(error);
              if (mapped.kind === "precondition") return (await client.getTask({ task: id })).result;
              throw error;
            }
          },
          () => undefined,
        );
        refusedAll = view.nodes?.every((item) => item.status !== "running" && item.view !== undefined && isFinalState(item.view.status.state) && item.view.status.state !== TaskState.Terminated) ?? true;
        if (refusedAll && view.nodes?.every((item) => item.view !== undefined) === true) throw new DrceError("precondition", `task ${id} has already ended on every node`, { legacyCode: ErrorCode.Terminate });
        return view;
      }
      const node = entry.nodes[0]!;
      return { ...context.viewAndNote(node, (await onNode(node, id, (client) => client.terminateTask(request))).result), placedOn: node };
    },
    async fetch(ref, remove, output = "inline") {
      const entry = context.entryOf(ref);
      const id = context.idOf(entry, ref);
      if (entry.kind === "all") {
        const whole = output === "whole";
        // A "whole" fetch deletes once the nodes' outputs were read (the reply was sent), not before.
        const view = await views.fanOutCall(entry, id, async (client) => (await client.fetchTask({ task: id, delete: remove && !whole })).result);
        if (whole) {
          // As on a node, a task not yet final on every node is not deleted.
          const final = view.nodes?.every((item) => item.status === "not-started" || (item.view !== undefined && isFinalState(item.view.status.state))) === true;
          if (!remove || !final) return wholeOutputs(view, id);
          return wholeOutputs(view, id, async () => {
            await removeAll(entry, id);
          });
        }
        if (remove && id === entry.id && view.nodes?.every((item) => item.view !== undefined || item.status === "not-started") === true) await record.remove(entry.id);
        return view;
      }
      const node = entry.nodes[0]!;
      // A "whole" fetch reads the rest of the output before the node deletes it.
      const view = context.viewAndNote(node, (await onNode(node, id, (client) => client.fetchTask({ task: id, delete: remove && output !== "whole" }))).result);
      const forgotten = (): Promise<void> => {
        states.forget(node, entry.ids);
        return record.remove(entry.id);
      };
      let shown: TaskView = view;
      if (output === "whole" && remove && isFinalState(view.status.state)) {
        // The output is read from the node as the reply is sent; the task is deleted once it was.
        const deleted = async (): Promise<void> => {
          await onNode(node, id, (client) => client.deleteTask({ task: id }));
          if (id === entry.id) await forgotten();
        };
        return { ...(await streamedOutput(node, id, view, deleted)), placedOn: node };
      }
      if (output === "whole") {
        shown = await streamedOutput(node, id, view);
        if (remove) await onNode(node, id, (client) => client.deleteTask({ task: id }));
      }
      if (remove && id === entry.id) await forgotten();
      return { ...shown, placedOn: node };
    },
    async remove(ref) {
      const entry = context.entryOf(ref);
      const id = context.idOf(entry, ref);
      if (entry.kind === "all") return removeAll(entry, id);
      const node = entry.nodes[0]!;
      let reply;
      try {
        reply = await onNode(node, id, (client) => client.deleteTask({ task: id }));
      } catch (error) {
        // The node no longer holds it (its retention deleted it): the manager lets the id go too.
        if (error instanceof DrceError && error.kind === "not-found" && id === entry.id) await record.remove(entry.id);
        throw error;
      }
      const view = context.viewAndNote(node, reply.result);
      if (id === entry.id) {
        states.forget(node, entry.ids);
        await record.remove(entry.id);
      }
      return { ...view, placedOn: node };
    },
    watchEvents(afterSeq, ref, signal) {
      if (ref === "") return states.events.watch(afterSeq, signal);
      const entry = record.find(ref);
      const id = entry === undefined ? ref : context.idOf(entry, ref);
      return states.events.watch(afterSeq, signal, (event) => event.status.id === id || event.status.alias === ref);
    },
    async writeInput(ref, data) {
      const entry = context.entryOf(ref);
      const id = context.idOf(entry, ref);
      await Promise.all(entry.nodes.map((node) => pipes.write(context.addressOf(node), id, data)));
    },
    async endInput(ref) {
      const entry = context.entryOf(ref);
      const id = context.idOf(entry, ref);
      await Promise.all(entry.nodes.map((node) => pipes.end(context.addressOf(node), id)));
    },
  };
}
