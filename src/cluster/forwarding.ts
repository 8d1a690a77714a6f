import type { Client } from "@connectrpc/connect";
import type { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { errorFromConnect } from "../client/error-from-connect.js";
import { DrceError } from "../domain/errors.js";
import type { TaskSpec } from "../domain/task.js";
import type { ManagerContext } from "./manager-context.js";
import { failureReason } from "./node-failure.js";
import type { PlacementEntry } from "./placement-record.js";
import { keptRollout, treeIds } from "./submitted-tree.js";

/** Placing a new tree and forwarding a single-node task to the node it was placed on. */
export interface Forwarding {
  /**
   * Places a new tree and records the placement durably; resolves to the entry written,
   * before anything is forwarded. While it is written, {@link Forwarding.settled} of its
   * root id waits for it.
   */
  place(spec: TaskSpec, digest: string): Promise<PlacementEntry>;
  /** Resolves once no placement of this root id is being written (whatever its outcome). */
  settled(id: string): Promise<void>;
  /**
   * Forwards a single-node task with `send`, moving it to another node when the first
   * provably never got it (the record then names the new node before it is sent); a node's
   * refusal removes the entry, since that node holds nothing.
   */
  forwardOne<T>(first: PlacementEntry, spec: TaskSpec, send: (client: Client<typeof TaskService>) => Promise<T>): Promise<{ entry: PlacementEntry; reply: T }>;
}

/** Creates the forwarding over the manager's context. */
export function createForwarding(context: ManagerContext): Forwarding {
  const { members, transport, record, placer, logger, options } = context;
  // Submissions whose record is being written, by root id: a concurrent identical one waits for it.
  const placing = new Map<string, Promise<unknown>>();

  const placeNew = async (spec: TaskSpec, digest: string): Promise<PlacementEntry> => {
    const choice = placer.place(spec.placement, context.candidates());
    const base = { id: spec.id, alias: spec.alias, ids: treeIds(spec), digest, mode: spec.mode, placedAt: Date.now() };
    const entry: PlacementEntry =
      choice.kind === "one"
        ? { ...base, kind: "one", nodes: [choice.node], skipped: {} }
        : { ...base, kind: "all", nodes: choice.nodes, skipped: Object.fromEntries([...choice.down, ...choice.unknown].map((name) => [name, "unreachable" as const])), rollout: keptRollout(spec) };
    await record.put(entry);
    return entry;
  };

  return {
    async place(spec, digest) {
      const placed = placeNew(spec, digest);
      placing.set(spec.id, placed);
      try {
        return await placed;
      } finally {
        placing.delete(spec.id);
      }
    },
    async settled(id) {
      for (;;) {
        const pending = placing.get(id);
        if (pending === undefined) return;
        await pending.catch(() => undefined); // the first submission's own caller gets its failure; this one looks again
      }
    },
    async forwardOne(first, spec, send) {
      let entry = first;
      const tried = new Set<string>();
      for (;;) {
        const node = entry.nodes[0]!;
        const startedAt = performance.now();
        try {
          const reply = await send(context.tasksOf(node));
          members.placed(node);
          options.onDispatch?.(node, performance.now() - startedAt);
          return { entry, reply };
        } catch (error) {
          const delivery = error instanceof DrceError ? "not-delivered" : transport.delivery(error);
          if (delivery === "answered") {
            // The node refused the task: it holds nothing, and the id is free again.
            await record.remove(entry.id);
            throw errorFromConnect(error);
          }
          if (delivery === "unknown") throw context.unreachable(node, spec.id, error);
          tried.add(node);
          logger.warn({ task: spec.id, node, err: failureReason(error) }, "a node never got a task; placing it on another one");
          let next: string;
          try {
            const choice = placer.place(spec.placement, context.candidates(), tried);
            if (choice.kind !== "one") throw new DrceError("internal", "a single-node placement became a fan-out");
            next = choice.node;
          } catch (placeError) {
            await record.remove(entry.id);
            throw placeError;
          }
          entry = { ...entry, nodes: [next] };
          await record.put(entry);
        }
      }
    },
  };
}
