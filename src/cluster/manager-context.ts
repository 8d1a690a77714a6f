import type { Client } from "@connectrpc/connect";
import type { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { errorFromConnect } from "../client/error-from-connect.js";
import { nodeViewFromProto } from "../client/from-proto.js";
import { DrceError, ErrorCode } from "../domain/errors.js";
import type { NodeResult } from "../domain/placement.js";
import type { TaskView } from "../domain/view.js";
import type { Logger } from "../logger.js";
import type { FleetTransport, NodeAddress } from "./fleet-transport.js";
import type { ForwardedStates } from "./forwarded-states.js";
import type { ManagerCoreOptions } from "./manager-core-options.js";
import type { Membership } from "./membership.js";
import { unreachableError } from "./node-failure.js";
import type { Candidate, Placer } from "./placement.js";
import type { PlacementEntry, PlacementRecord } from "./placement-record.js";

/** A node's task result as its TaskService answers it (what a view is read from). */
export type NodeTaskResult = Parameters<typeof nodeViewFromProto>[0];

/** A fan-out this process runs: each node's latest item, a stop for its rollout, and its end. */
export interface RunningFanOut {
  readonly items: Map<string, NodeResult>;
  readonly stop: AbortController;
  readonly done: Promise<void>;
}

/** What the manager core's concerns share: its options and parts, and the few operations they all use. */
export interface ManagerContext {
  readonly options: ManagerCoreOptions;
  readonly members: Membership;
  readonly transport: FleetTransport;
  readonly record: PlacementRecord;
  readonly placer: Placer;
  readonly logger: Logger;
  /** The last known state of each forwarded task on each node, and the manager's event log. */
  readonly states: ForwardedStates;
  /** Fan-outs this process runs, by root id. */
  readonly fanOuts: Map<string, RunningFanOut>;
  /** Aborted when the manager shuts down. */
  readonly shutdown: AbortSignal;
  /** The address of a node of the cluster; a node not in it is "unavailable" (5000). */
  addressOf(node: string): NodeAddress;
  /** The TaskService client of a node of the cluster (its pooled connection). */
  tasksOf(node: string): Client<typeof TaskService>;
  /** The nodes as the placer weighs them. */
  candidates(): Candidate[];
  /** The placement entry holding a task id or alias; an unknown one is "not-found". */
  entryOf(ref: string): PlacementEntry;
  /** The task id a reference names in its entry: a subtask's own id, else the root's (an alias). */
  idOf(entry: PlacementEntry, ref: string): string;
  /** The error of a call to a node that did not answer, with what was last known of the task there. */
  unreachable(node: string, id: string, error: unknown): DrceError;
  /** Reads a node's answered result as a view and notes it in the forwarded states. */
  viewAndNote(node: string, result: NodeTaskResult | undefined): TaskView;
  /** Maps a failure of a call on a node: its own answer as its error, anything else as unreachable. */
  mapNodeFailure(node: string, id: string, error: unknown): DrceError;
}

/** Creates the context the manager core's concerns share over `states`, stopped by `shutdown`. */
export function createManagerContext(options: ManagerCoreOptions, states: ForwardedStates, shutdown: AbortSignal): ManagerContext {
  const { members, transport, record, placer, logger } = options;
  const addressOf = (node: string): NodeAddress => {
    const member = members.get(node);
    if (member === undefined) throw new DrceError("unavailable", `node ${node} is not in the cluster`, { legacyCode: ErrorCode.NoTargetNode });
    return member;
  };
  const unreachable = (node: string, id: string, error: unknown): DrceError => unreachableError(node, id, error, states.status(node, id));
  return {
    options,
    members,
    transport,
    record,
    placer,
    logger,
    states,
    fanOuts: new Map(),
    shutdown,
    addressOf,
    tasksOf: (node) => transport.tasks(addressOf(node)),
    candidates: () => members.members().map((m) => ({ name: m.name, labels: m.labels, state: m.state, usage: m.usage, freeSlots: m.freeSlots })),
    entryOf(ref) {
      const entry = record.find(ref);
      if (entry === undefined) throw new DrceError("not-found", `no task ${JSON.stringify(ref)}`, { legacyCode: ErrorCode.None });
      return entry;
    },
    idOf: (entry, ref) => (entry.ids.includes(ref) ? ref : entry.id),
    unreachable,
    viewAndNote(node, result) {
      if (result === undefined) throw new DrceError("internal", `node ${node} answered without a result`);
      const view = nodeViewFromProto(result);
      states.noteView(node, view);
      return view;
    },
    mapNodeFailure: (node, id, error) => (transport.delivery(error) === "answered" ? errorFromConnect(error) : unreachable(node, id, error)),
  };
}
