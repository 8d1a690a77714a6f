import { create } from "@bufbuild/protobuf";
import { SendTaskInputRequestSchema, type SendTaskInputRequest } from "../../gen/drce/v1/task_service_pb.js";
import { errorFromConnect } from "../client/error-from-connect.js";
import type { FleetTransport, NodeAddress } from "./fleet-transport.js";

/**
 * The stdin of forwarded tasks: a node closes a task's stdin when a SendTaskInput call ends,
 * so the manager holds one call open per task and node, from its first write to endInput.
 */
export interface InputPipes {
  /** Writes bytes to a task's stdin on a node; resolves once the call took them. */
  write(node: NodeAddress, task: string, data: Uint8Array): Promise<void>;
  /** Closes a task's stdin on a node, and resolves once the node answered the call. */
  end(node: NodeAddress, task: string): Promise<void>;
  /** Ends every open call. */
  close(): void;
}

interface Pipe {
  readonly queue: SendTaskInputRequest[];
  wake: (() => void) | undefined;
  ended: boolean;
  readonly done: Promise<void>;
  failure: unknown;
}

/** Creates the manager's stdin pipes over the fleet transport. */
export function createInputPipes(transport: FleetTransport): InputPipes {
  const pipes = new Map<string, Pipe>();
  const keyOf = (node: NodeAddress, task: string) => `${node.name}\u0000${task}`;
  const open = (node: NodeAddress, task: string): Pipe => {
    const key = keyOf(node, task);
    let pipe = pipes.get(key);
    if (pipe !== undefined) return pipe;
    const state: Omit<Pipe, "done"> = { queue: [], wake: undefined, ended: false, failure: undefined };
    async function* messages(): AsyncGenerator<SendTaskInputRequest> {
      for (;;) {
        const next = state.queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (state.ended) return;
        await new Promise<void>((resolve) => (state.wake = resolve));
        state.wake = undefined;
      }
    }
    const done = transport
      .tasks(node)
      .sendTaskInput(messages())
      .then(
        () => undefined,
        (error: unknown) => {
          state.failure = errorFromConnect(error);
        },
      )
      .finally(() => pipes.delete(key));
    pipe = Object.assign(state, { done }) as Pipe;
    pipes.set(key, pipe);
    return pipe;
  };
  return {
    async write(node, task, data) {
      const pipe = open(node, task);
      if (pipe.failure !== undefined) throw pipe.failure;
      pipe.queue.push(create(SendTaskInputRequestSchema, { task, data }));
      pipe.wake?.();
    },
    async end(node, task) {
      const pipe = pipes.get(keyOf(node, task)) ?? open(node, task);
      // A call that sent nothing names no task: the first message names it.
      if (pipe.queue.length === 0) pipe.queue.push(create(SendTaskInputRequestSchema, { task }));
      pipe.ended = true;
      pipe.wake?.();
      await pipe.done;
      if (pipe.failure !== undefined) throw pipe.failure;
    },
    close() {
      for (const pipe of pipes.values()) {
        pipe.ended = true;
        pipe.wake?.();
      }
    },
  };
}
