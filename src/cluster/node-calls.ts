import type { Client } from "@connectrpc/connect";
import type { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import type { StreamName } from "../domain/task.js";
import type { TaskView } from "../domain/view.js";
import type { ManagerContext } from "./manager-context.js";
import { memoryOutput, withRemoteOutput } from "./remote-output.js";

/** Calls on the node that holds a single-node task. */
export interface NodeCalls {
  /** Runs a unary call on the node of a single-node task: the node's own error as its error, no answer as unreachable. */
  onNode<T>(node: string, id: string, call: (client: Client<typeof TaskService>) => Promise<T>): Promise<T>;
  /** Adds a node's whole kept output of both streams to a view, read into memory. */
  wholeOutput(node: string, id: string, view: TaskView): Promise<TaskView>;
  /**
   * Adds a node's whole kept output of both streams to a view, for a legacy "whole" reply:
   * read from the node as the reply is sent when the task has ended (its kept sizes are known),
   * else read into memory. `released` runs once the reply was sent (at once when nothing is left to read).
   */
  streamedOutput(node: string, id: string, view: TaskView, released?: () => Promise<void>): Promise<TaskView>;
}

/** Creates the calls on single-node tasks' nodes over the manager's context. */
export function createNodeCalls(context: ManagerContext): NodeCalls {
  const calls: NodeCalls = {
    async onNode(node, id, call) {
      let client: Client<typeof TaskService>;
      try {
        client = context.tasksOf(node);
      } catch (error) {
        throw context.unreachable(node, id, error);
      }
      try {
        return await call(client);
      } catch (error) {
        throw context.mapNodeFailure(node, id, error);
      }
    },
    async wholeOutput(node, id, view) {
      // A view that carries all of both streams inline needs no further read.
      if (view.stdoutMore !== true && view.stderrMore !== true) return { ...view, ...(view.stdout === undefined ? {} : { stdoutFile: memoryOutput(view.stdout) }), ...(view.stderr === undefined ? {} : { stderrFile: memoryOutput(view.stderr) }) };
      const parts: Record<StreamName, Uint8Array[]> = { stdout: [], stderr: [] };
      for await (const message of context.tasksOf(node).streamTaskOutput({ task: id, stdoutOffset: 0n, stderrOffset: 0n, follow: false })) {
        if (message.event.case === "output") parts[message.event.value.stream === 2 ? "stderr" : "stdout"].push(message.event.value.data);
      }
      return { ...view, stdoutFile: memoryOutput(Buffer.concat(parts.stdout)), stderrFile: memoryOutput(Buffer.concat(parts.stderr)) };
    },
    streamedOutput: (node, id, view, released) =>
      withRemoteOutput(node, view, id, { clientOf: (name) => context.tasksOf(name), gather: (name, nodeView) => calls.wholeOutput(name, id, nodeView), logger: context.logger, ...(released === undefined ? {} : { released }) }),
  };
  return calls;
}
