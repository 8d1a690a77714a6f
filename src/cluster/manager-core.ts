import type { Client } from "@connectrpc/connect";
import { TaskService, TerminateAlgorithm } from "../../gen/drce/v1/task_service_pb.js";
import { errorFromConnect } from "../client/error-from-connect.js";
import { chunkFromProto, gapFromProto, nodeViewFromProto } from "../client/from-proto.js";
import { specToProto } from "../client/spec-to-proto.js";
import type { OutputEvent, RunEvent, SubmitOutcome, TaskCore, TaskEvent } from "../core/api.js";
import type { SequenceLog } from "../core/sequence-log.js";
import { DrceError, ErrorCode } from "../domain/errors.js";
import type { NodeResult, Placement } from "../domain/placement.js";
import { specDigest } from "../domain/spec-json.js";
import { isFinalState, stateNames, TaskMode, TaskState } from "../domain/states.js";
import type { StreamName, TaskSpec, TaskStatus, TerminateOptions } from "../domain/task.js";
import { isValidTaskId } from "../domain/validate.js";
import type { KeptOutput, OutputMode, TaskView } from "../domain/view.js";
import type { Logger } from "../logger.js";
import type { FleetTransport, NodeAddress } from "./fleet-transport.js";
import { createForwardedStates, type ForwardedStates } from "./forwarded-states.js";
import { createInputPipes } from "./input-pipes.js";
import type { Membership } from "./membership.js";
import { failedResult, mergeFanOut, nodeResultOf, notStartedResult, unreachableResult } from "./node-results.js";
import { resolveNodeCount, type Candidate, type Placer } from "./placement.js";
import type { PlacementEntry, PlacementRecord } from "./placement-record.js";
import { rollout } from "./rollout.js";

/** Options of {@link createManagerCore}. */
export interface ManagerCoreOptions {
  readonly members: Membership;
  readonly transport: FleetTransport;
  readonly record: PlacementRecord;
  readonly placer: Placer;
  /** Task events kept for watchers that resume. */
  readonly eventHistory: number;
  readonly logger: Logger;
  /** Called with each forwarding's node and the milliseconds from the request to the node's reply (acceptance). */
  readonly onDispatch?: (node: string, ms: number) => void;
}

/** The manager's task core: the TaskCore every adapter serves, plus what the node's parts read. */
export interface ManagerCore extends TaskCore {
  /** The manager's event log of forwarded tasks' state changes. */
  readonly events: SequenceLog<TaskEvent>;
  /** Execution slots over the cluster: tasks running on the nodes (the manager queues none itself). */
  readonly slots: { readonly active: number; readonly queued: number };
  /** Loads the placement record and starts following the nodes. */
  init(): Promise<{ loaded: number }>;
  /** Stops forwarding: fan-outs stop starting nodes, the calls in flight are let go. */
  shutdown(graceMs: number): Promise<void>;
}

let idCounter = 0;

/** Generates a numeric task id, unique on this manager (legacy callers expect numbers). */
function generateId(taken: (id: string) => boolean): string {
  for (;;) {
    idCounter = (idCounter + 1) % 1000;
    const id = String(Date.now() * 1000 + idCounter);
    if (!taken(id)) return id;
  }
}

/** Every id of a tree, root first. */
function treeIds(spec: TaskSpec): string[] {
  return [spec.id, ...spec.subtasks.flatMap(treeIds)];
}

/** The spec a node gets: the same tree without the placement, which is the manager's alone. */
function forNode(spec: TaskSpec): TaskSpec {
  const { placement: _placement, ...rest } = spec;
  return rest as TaskSpec;
}

/** Milliseconds between two polls of an async fan-out's task on a node. */
const pollSteps = [100, 200, 400, 800, 1000];

/** A kept output held in memory (the remote bytes a legacy "whole" reply carries). */
function memoryOutput(bytes: Uint8Array): KeptOutput {
  return {
    size: bytes.length,
    read: async (position, length) => bytes.subarray(position, Math.min(bytes.length, position + length)),
    close: async () => undefined,
  };
}

/**
 * Creates the manager's TaskCore. A submission is placed (the placer), recorded durably (the
 * placement record) and only then forwarded; a task a node accepted is never sent elsewhere,
 * and a submission goes to another node only when the first provably never got it. Mode
 * "all" runs through the rollout with its rate controls. Every later call by id or alias goes
 * to the node(s) holding the task; a node that does not answer is named in an "unavailable"
 * error (legacy 5000) carrying the last known state, or, for a fanned-out task, in that
 * node's "unreachable" item.
 */
export function createManagerCore(options: ManagerCoreOptions): ManagerCore {
  const { members, transport, record, placer, logger } = options;
  const states: ForwardedStates = createForwardedStates({ members, transport, record, eventHistory: options.eventHistory, logger });
  const pipes = createInputPipes(transport);
  // Submissions whose record is being written, by root id: a concurrent identical one waits for it.
  const placing = new Map<string, Promise<unknown>>();
  // Fan-outs this process runs: each node's latest item, and a stop for the rollout.
  const fanOuts = new Map<string, { readonly items: Map<string, NodeResult>; readonly stop: AbortController; readonly done: Promise<void> }>();
  const shutdown = new AbortController();

  const addressOf = (node: string): NodeAddress => {
    const member = members.get(node);
    if (member === undefined) throw new DrceError("unavailable", `node ${node} is not in the cluster`, { legacyCode: ErrorCode.NoTargetNode });
    return member;
  };
  const tasksOf = (node: string): Client<typeof TaskService> => transport.tasks(addressOf(node));

  const candidates = (): Candidate[] => members.members().map((m) => ({ name: m.name, labels: m.labels, state: m.state, usage: m.usage, freeSlots: m.freeSlots }));

  const entryOf = (ref: string): PlacementEntry => {
    const entry = record.find(ref);
    if (entry === undefined) throw new DrceError("not-found", `no task ${JSON.stringify(ref)}`, { legacyCode: ErrorCode.None });
    return entry;
  };
  const idOf = (entry: PlacementEntry, ref: string): string => (entry.ids.includes(ref) ? ref : entry.id);

  /** The error of a call to a node that did not answer, with what was last known of the task there. */
  const unreachable = (node: string, id: string, error: unknown): DrceError => {
    const last = states.status(node, id);
    const known = last === undefined ? "no state of it is known yet" : `its last known state is ${stateNames[last.state] ?? last.state}${isFinalState(last.state) ? ` (exit status ${last.exitStatus})` : ""}`;
    return new DrceError("unavailable", `node ${node}, which holds task ${id}, is unreachable (${reason(error)}); ${known}`, { legacyCode: ErrorCode.NoTargetNode, cause: error });
  };
  const reason = (error: unknown): string => {
    for (let cause: unknown = error, depth = 0; cause !== undefined && cause !== null && depth < 8; depth++) {
      const code = (cause as { code?: unknown }).code;
      if (typeof code === "string") return code === "ECONNREFUSED" ? "connection refused" : code;
      cause = (cause as { cause?: unknown }).cause;
    }
    return error instanceof Error ? error.message : String(error);
  };

  /** Runs a unary call on the node of a single-node task, mapping its failure. */
  const onNode = async <T>(node: string, id: string, call: (client: Client<typeof TaskService>) => Promise<T>): Promise<T> => {
    let client: Client<typeof TaskService>;
    try {
      client = tasksOf(node);
    } catch (error) {
      throw unreachable(node, id, error);
    }
    try {
      return await call(client);
    } catch (error) {
      if (transport.delivery(error) === "answered") throw errorFromConnect(error);
      throw unreachable(node, id, error);
    }
  };

  const viewAndNote = (node: string, result: Parameters<typeof nodeViewFromProto>[0] | undefined): TaskView => {
    if (result === undefined) throw new DrceError("internal", `node ${node} answered without a result`);
    const view = nodeViewFromProto(result);
    states.noteView(node, view);
    return view;
  };

  /** A node's whole kept output of one stream past what a view carries inline, for a legacy "whole" reply. */
  const wholeOutput = async (node: string, id: string, view: TaskView): Promise<TaskView> => {
    if (view.stdoutMore !== true && view.stderrMore !== true) return { ...view, ...(view.stdout === undefined ? {} : { stdoutFile: memoryOutput(view.stdout) }), ...(view.stderr === undefined ? {} : { stderrFile: memoryOutput(view.stderr) }) };
    const parts: Record<StreamName, Uint8Array[]> = { stdout: [], stderr: [] };
    for await (const message of tasksOf(node).streamTaskOutput({ task: id, stdoutOffset: 0n, stderrOffset: 0n, follow: false })) {
      if (message.event.case === "output") parts[message.event.value.stream === 2 ? "stderr" : "stdout"].push(message.event.value.data);
    }
    return { ...view, stdoutFile: memoryOutput(Buffer.concat(parts.stdout)), stderrFile: memoryOutput(Buffer.concat(parts.stderr)) };
  };

  // ---- Items of fanned-out tasks ----

  /** One node's item for a call on a fanned-out task, never throwing: a failure is the item. */
  const itemOf = async (entry: PlacementEntry, node: string, id: string, call: (client: Client<typeof TaskService>) => Promise<TaskView>): Promise<NodeResult> => {
    const skipped = entry.skipped[node];
    if (skipped === "not-started") return notStartedResult(node, "not started: the fan-out stopped before this node");
    if (skipped === "unreachable") return unreachableResult(node, "it was down when the task was placed; the task was never sent to it");
    try {
      return nodeResultOf(node, await call(tasksOf(node)));
    } catch (error) {
      const delivery = error instanceof DrceError ? "answered" : transport.delivery(error);
      const last = states.view(node, id);
      if (delivery === "answered") {
        const mapped = error instanceof DrceError ? error : errorFromConnect(error);
        // A node that never got its share (the manager stopped mid-rollout) does not know the id.
        if (mapped.kind === "not-found" && last === undefined) return notStartedResult(node, "not started: the node does not hold the task");
        return failedResult(node, mapped.legacyCode, mapped.message, last);
      }
      return unreachableResult(node, reason(error), last);
    }
  };

  /** Every node's item of a fanned-out task for a call, merged. */
  const fanOutCall = async (entry: PlacementEntry, id: string, call: (client: Client<typeof TaskService>) => Promise<Parameters<typeof nodeViewFromProto>[0] | undefined>, node?: (name: string) => void): Promise<TaskView> => {
    const names = [...entry.nodes, ...Object.keys(entry.skipped).filter((name) => !entry.nodes.includes(name))];
    const items = await Promise.all(
      names.map((name) =>
        itemOf(entry, name, id, async (client) => {
          const view = viewAndNote(name, await call(client));
          node?.(name);
          return view;
        }),
      ),
    );
    const running = fanOuts.get(entry.id);
    // Nodes the rollout has not reached yet are not started so far, not failed.
    const shown = items.map((item) => (running !== undefined && item.status === "not-started" && !running.items.has(item.node) ? { ...item, errorMessage: "not started yet (max concurrency)" } : item));
    return mergeFanOut({ id, alias: id === entry.id ? entry.alias : "", mode: entry.mode, placedAt: entry.placedAt, items: shown, pending: running !== undefined });
  };

  // ---- Submission ----

  const assignIds = (spec: TaskSpec, taken: Set<string>): TaskSpec => {
    if (spec.id !== "" && !isValidTaskId(spec.id)) throw new DrceError("invalid", `task id ${JSON.stringify(spec.id)} is not allowed`, { legacyCode: ErrorCode.TaskIdRange });
    if (spec.id !== "" && taken.has(spec.id)) throw new DrceError("invalid", `task id ${spec.id} appears twice in one request`, { legacyCode: ErrorCode.TaskIdRange });
    const id = spec.id !== "" ? spec.id : generateId((candidate) => taken.has(candidate) || record.find(candidate) !== undefined);
    taken.add(id);
    return { ...spec, id, subtasks: spec.subtasks.map((sub) => assignIds(sub, taken)) };
  };

  /** Places and records a new tree; returns the entry written, before anything is forwarded. */
  const placeNew = async (spec: TaskSpec, digest: string): Promise<PlacementEntry> => {
    const choice = placer.place(spec.placement, candidates());
    const base = { id: spec.id, alias: spec.alias, ids: treeIds(spec), digest, mode: spec.mode, placedAt: Date.now() };
    const entry: PlacementEntry =
      choice.kind === "one"
        ? { ...base, kind: "one", nodes: [choice.node], skipped: {} }
        : { ...base, kind: "all", nodes: choice.nodes, skipped: Object.fromEntries([...choice.down, ...choice.unknown].map((name) => [name, "unreachable" as const])) };
    await record.put(entry);
    return entry;
  };

  /** Forwards a single-node task, moving it to another node when the first provably never got it. */
  const forwardOne = async <T>(first: PlacementEntry, spec: TaskSpec, send: (client: Client<typeof TaskService>) => Promise<T>): Promise<{ entry: PlacementEntry; reply: T }> => {
    let entry = first;
    const tried = new Set<string>();
    for (;;) {
      const node = entry.nodes[0]!;
      const startedAt = performance.now();
      try {
        const reply = await send(tasksOf(node));
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
        if (delivery === "unknown") throw unreachable(node, spec.id, error);
        tried.add(node);
        logger.warn({ task: spec.id, node, err: reason(error) }, "a node never got a task; placing it on another one");
        let next: string;
        try {
          const choice = placer.place(spec.placement, candidates(), tried);
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
  };

  /** The fan-out state of a task this process runs, made on first use. */
  const startFanOut = (entry: PlacementEntry, spec: TaskSpec, start: (node: string, signal: AbortSignal, accepted: () => void) => Promise<NodeResult>, onResult?: (result: NodeResult) => void): { done: Promise<NodeResult[]>; firstWave: Promise<void> } => {
    const stop = new AbortController();
    const onShutdown = () => stop.abort();
    shutdown.signal.addEventListener("abort", onShutdown, { once: true });
    const items = new Map<string, NodeResult>();
    const placement: Placement | undefined = spec.placement;
    let wave = 0;
    const waveSize = placement?.maxConcurrency === undefined ? entry.nodes.length : Math.min(entry.nodes.length, resolveNodeCount(placement.maxConcurrency, entry.nodes.length));
    let waveDone!: () => void;
    const firstWave = new Promise<void>((resolve) => (waveDone = resolve));
    if (waveSize === 0) waveDone();
    const gather = placement?.gatherTimeoutMs ?? 0;
    const done = rollout(entry.nodes, { ...(placement?.maxConcurrency === undefined ? {} : { maxConcurrency: placement.maxConcurrency }), ...(placement?.maxErrors === undefined ? {} : { maxErrors: placement.maxErrors }), signal: stop.signal, onResult: (result) => {
      items.set(result.node, result);
      onResult?.(result);
    } }, async (node, signal) => {
      const nodeSignal = gather > 0 ? AbortSignal.any([signal, AbortSignal.timeout(gather)]) : signal;
      items.set(node, { node, status: "running", errorCode: 0, errorMessage: "" });
      // The first wave is over once each of its nodes accepted its share (or ended it).
      let counted = false;
      const accepted = (): void => {
        if (counted) return;
        counted = true;
        if (++wave === waveSize) waveDone();
      };
      try {
        return await start(node, nodeSignal, accepted);
      } finally {
        accepted();
      }
    }).then(async (results) => {
      shutdown.signal.removeEventListener("abort", onShutdown);
      waveDone();
      const notStarted = results.filter((result) => result.status === "not-started").map((result) => result.node);
      if (notStarted.length > 0) {
        await record.put({ ...entry, nodes: entry.nodes.filter((name) => !notStarted.includes(name)), skipped: { ...entry.skipped, ...Object.fromEntries(notStarted.map((name) => [name, "not-started" as const])) } });
      }
      fanOuts.delete(entry.id);
      return results;
    });
    fanOuts.set(entry.id, { items, stop, done: done.then(() => undefined) });
    return { done, firstWave };
  };

  /** A node's result from a call that failed while starting its share of a fan-out. */
  const startFailure = (node: string, id: string, error: unknown, signal: AbortSignal): NodeResult => {
    if (signal.aborted && !shutdown.signal.aborted) return { node, status: "timed-out", errorCode: ErrorCode.NoTargetNode, errorMessage: `node ${node} did not answer within the gather time` };
    const delivery = error instanceof DrceError ? "answered" : transport.delivery(error);
    if (delivery === "answered") {
      const mapped = error instanceof DrceError ? error : errorFromConnect(error);
      return failedResult(node, mapped.legacyCode, mapped.message);
    }
    return unreachableResult(node, reason(error), states.view(node, id));
  };

  const skippedItems = (entry: PlacementEntry): NodeResult[] =>
    Object.entries(entry.skipped).map(([name, why]) => (why === "unreachable" ? unreachableResult(name, members.get(name) === undefined ? "no such node in the cluster" : "it was down when the task was placed; the task was never sent to it") : notStartedResult(name, "not started")));

  const submitAll = async (entry: PlacementEntry, spec: TaskSpec, signal: AbortSignal | undefined): Promise<TaskView> => {
    const proto = specToProto(forNode(spec));
    const sync = spec.mode === TaskMode.Sync;
    const { done, firstWave } = startFanOut(entry, spec, async (node, nodeSignal, accepted) => {
      const startedAt = performance.now();
      try {
        const client = tasksOf(node);
        const reply = await client.submitTask({ task: proto }, { signal: nodeSignal });
        members.placed(node);
        options.onDispatch?.(node, performance.now() - startedAt);
        let view = viewAndNote(node, reply.result);
        accepted();
        // An async share holds its place in the rollout until it ends, so max-concurrency counts running tasks.
        for (let step = 0; !isFinalState(view.status.state); step++) {
          await new Promise((resolve) => setTimeout(resolve, pollSteps[Math.min(step, pollSteps.length - 1)]));
          if (nodeSignal.aborted) throw nodeSignal.reason;
          view = viewAndNote(node, (await client.getTask({ task: spec.id }, { signal: nodeSignal })).result);
        }
        return nodeResultOf(node, view);
      } catch (error) {
        return startFailure(node, spec.id, error, nodeSignal);
      }
    });
    if (sync) {
      const abandon = new Promise<never>((_, reject) => signal?.addEventListener("abort", () => reject(new DrceError("unavailable", "the caller stopped waiting")), { once: true }));
      const results = await Promise.race([done, abandon]);
      return mergeFanOut({ id: spec.id, alias: spec.alias, mode: spec.mode, placedAt: entry.placedAt, items: [...results, ...skippedItems(entry)] });
    }
    await firstWave;
    const state = fanOuts.get(entry.id);
    const items = entry.nodes.map((name) => state?.items.get(name) ?? notStartedResult(name, "not started yet (max concurrency)"));
    return mergeFanOut({ id: spec.id, alias: spec.alias, mode: spec.mode, placedAt: entry.placedAt, items: [...items, ...skippedItems(entry)], pending: fanOuts.has(entry.id) });
  };

  /** An existing task's answer to a repeated identical submission. */
  const resubmitted = async (entry: PlacementEntry, spec: TaskSpec, signal: AbortSignal | undefined, output: OutputMode): Promise<SubmitOutcome> => {
    if (entry.kind === "one") {
      const node = entry.nodes[0]!;
      // The node answers a repeated submission itself: the same task, waited for when sync.
      const reply = await onNode(node, spec.id, (client) => client.submitTask({ task: specToProto(forNode(spec)) }, signal === undefined ? {} : { signal }));
      const view = viewAndNote(node, reply.result);
      return { view: { ...(output === "whole" ? await wholeOutput(node, spec.id, view) : view), placedOn: node }, existing: true };
    }
    if (spec.mode === TaskMode.Sync) await fanOuts.get(entry.id)?.done;
    return { view: await fanOutCall(entry, spec.id, async (client) => (await client.getTask({ task: spec.id })).result), existing: true };
  };

  const submit = async (input: TaskSpec, signal?: AbortSignal, output: OutputMode = "inline"): Promise<SubmitOutcome> => {
    if (shutdown.signal.aborted) throw new DrceError("unavailable", "the manager is shutting down");
    const spec = assignIds(input, new Set());
    const digest = specDigest(spec);
    for (;;) {
      const pending = placing.get(spec.id);
      if (pending === undefined) break;
      await pending.catch(() => undefined); // the first submission's own caller gets its failure; this one looks again
    }
    const existing = record.find(spec.id);
    if (existing !== undefined) {
      if (existing.id !== spec.id || existing.digest !== digest) throw new DrceError("exists", `task id ${spec.id} is already used by a different request`, { legacyCode: ErrorCode.CreateTask });
      return resubmitted(existing, spec, signal, output);
    }
    for (const id of treeIds(spec).slice(1)) if (record.find(id) !== undefined) throw new DrceError("exists", `task id ${id} is already used`, { legacyCode: ErrorCode.CreateTask });
    const placed = placeNew(spec, digest);
    placing.set(spec.id, placed);
    let entry: PlacementEntry;
    try {
      entry = await placed;
    } finally {
      placing.delete(spec.id);
    }
    if (entry.kind === "all") return { view: await submitAll(entry, spec, signal), existing: false };
    const { entry: final, reply } = await forwardOne(entry, spec, (client) => client.submitTask({ task: specToProto(forNode(spec)) }, signal === undefined ? {} : { signal }));
    const node = final.nodes[0]!;
    const view = viewAndNote(node, reply.result);
    return { view: { ...(output === "whole" ? await wholeOutput(node, spec.id, view) : view), placedOn: node }, existing: reply.existing };
  };

  // ---- Attached runs ----

  async function* runOne(entry: PlacementEntry, spec: TaskSpec, signal: AbortSignal): AsyncGenerator<RunEvent> {
    // Opening the stream is the forwarding: a node that provably never got it is replaced.
    let node = entry.nodes[0]!;
    const { entry: final, reply: stream } = await forwardOne(entry, spec, async (client) => {
      const iterator = client.runTask({ task: specToProto(forNode(spec)) }, { signal })[Symbol.asyncIterator]();
      const first = await iterator.next();
      return { iterator, first };
    });
    node = final.nodes[0]!;
    try {
      for (let next = stream.first; next.done !== true; next = await stream.iterator.next()) {
        const event = next.value.event;
        if (event.case === "accepted") yield { kind: "accepted", view: { ...viewAndNote(node, event.value), placedOn: node } };
        else if (event.case === "output") yield { kind: "output", chunk: chunkFromProto(event.value) };
        else if (event.case === "gap") yield { kind: "gap", gap: gapFromProto(event.value) };
        else if (event.case === "result") yield { kind: "result", view: { ...viewAndNote(node, event.value), placedOn: node } };
      }
    } catch (error) {
      if (signal.aborted) throw error;
      if (transport.delivery(error) === "answered") throw errorFromConnect(error);
      throw unreachable(node, spec.id, error);
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
    const { done } = startFanOut(
      entry,
      spec,
      async (node, nodeSignal) => {
        const call = AbortSignal.any([nodeSignal, signal]);
        const startedAt = performance.now();
        let last: TaskView | undefined;
        try {
          for await (const message of tasksOf(node).runTask({ task: proto }, { signal: call })) {
            const event = message.event;
            if (event.case === "accepted") {
              members.placed(node);
              options.onDispatch?.(node, performance.now() - startedAt);
              last = viewAndNote(node, event.value);
            } else if (event.case === "output") push({ kind: "output", chunk: chunkFromProto(event.value), node });
            else if (event.case === "gap") push({ kind: "gap", gap: gapFromProto(event.value), node });
            else if (event.case === "result") last = viewAndNote(node, event.value);
          }
          if (last === undefined) throw new DrceError("internal", `node ${node} ended the run without a result`);
          return nodeResultOf(node, last);
        } catch (error) {
          const result = startFailure(node, spec.id, error, call);
          return last === undefined ? result : { ...result, view: last };
        }
      },
      (result) => push({ kind: "node-result", result }),
    );
    let results: NodeResult[] | undefined;
    void done.then((value) => {
      results = value;
      wake?.();
    });
    yield { kind: "accepted", view: mergeFanOut({ id: spec.id, alias: spec.alias, mode: spec.mode, placedAt: entry.placedAt, items: entry.nodes.map((name) => ({ node: name, status: "running" as const, errorCode: 0, errorMessage: "" })) }) };
    for (const item of skippedItems(entry)) yield { kind: "node-result", result: item };
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
    yield { kind: "result", view: mergeFanOut({ id: spec.id, alias: spec.alias, mode: spec.mode, placedAt: entry.placedAt, items: [...results, ...skippedItems(entry)] }) };
  }

  // ---- Output streams ----

  async function* streamOne(node: string, id: string, offsets: Readonly<Record<StreamName, number>>, follow: boolean, signal: AbortSignal): AsyncGenerator<OutputEvent> {
    try {
      for await (const message of tasksOf(node).streamTaskOutput({ task: id, stdoutOffset: BigInt(offsets.stdout), stderrOffset: BigInt(offsets.stderr), follow }, { signal })) {
        const event = message.event;
        if (event.case === "output") yield { kind: "output", chunk: chunkFromProto(event.value) };
        else if (event.case === "gap") yield { kind: "gap", gap: gapFromProto(event.value) };
        else if (event.case === "result") yield { kind: "result", view: { ...viewAndNote(node, event.value), placedOn: node } };
      }
    } catch (error) {
      if (signal.aborted) throw error;
      if (error instanceof DrceError) throw error;
      if (transport.delivery(error) === "answered") throw errorFromConnect(error);
      throw unreachable(node, id, error);
    }
  }

  async function* streamAll(entry: PlacementEntry, id: string, offsets: Readonly<Record<StreamName, number>>, follow: boolean, signal: AbortSignal): AsyncGenerator<OutputEvent> {
    const queue: OutputEvent[] = [];
    let wake: (() => void) | undefined;
    const push = (event: OutputEvent): void => {
      queue.push(event);
      wake?.();
    };
    const one = async (node: string): Promise<NodeResult> => {
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
    void Promise.all(
      entry.nodes.map(async (node) => {
        const result = await one(node);
        push({ kind: "node-result", result });
        return result;
      }),
    ).then((value) => {
      results = value;
      wake?.();
    });
    for (const item of skippedItems(entry)) yield { kind: "node-result", result: item };
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
    yield { kind: "result", view: mergeFanOut({ id, alias: id === entry.id ? entry.alias : "", mode: entry.mode, placedAt: entry.placedAt, items: [...results, ...skippedItems(entry)] }) };
  }

  const listed = (): TaskStatus[] => {
    const out: TaskStatus[] = [];
    for (const entry of record.entries()) {
      for (const id of entry.ids) {
        if (entry.kind === "one") {
          out.push(states.status(entry.nodes[0]!, id) ?? placeholder(entry, id));
          continue;
        }
        const items = entry.nodes.map((node): NodeResult => {
          const view = states.view(node, id);
          return view === undefined ? { node, status: "running", errorCode: 0, errorMessage: "" } : nodeResultOf(node, view);
        });
        out.push(mergeFanOut({ id, alias: id === entry.id ? entry.alias : "", mode: entry.mode, placedAt: entry.placedAt, items }).status);
      }
    }
    return out;
  };
  const placeholder = (entry: PlacementEntry, id: string): TaskStatus => ({ ...mergeFanOut({ id, alias: id === entry.id ? entry.alias : "", mode: entry.mode, placedAt: entry.placedAt, items: [] }).status, state: TaskState.New });

  return {
    events: states.events,
    get slots() {
      let active = 0;
      for (const member of members.members()) if (member.state !== "down") active += member.running;
      return { active, queued: 0 };
    },
    async init() {
      const loaded = await record.load((file, error) => logger.error({ file, err: String(error) }, "a placement record entry could not be read; its task is not routed"));
      states.start();
      return { loaded };
    },
    async shutdown(graceMs) {
      shutdown.abort();
      pipes.close();
      const running = [...fanOuts.values()].map((fanOut) => fanOut.done);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(running), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
      states.close();
    },
    submit,
    async check(ref, extended, output = "inline") {
      const entry = entryOf(ref);
      const id = idOf(entry, ref);
      if (entry.kind === "all") return fanOutCall(entry, id, async (client) => (await client.getTask({ task: id, extended })).result);
      const node = entry.nodes[0]!;
      const view = viewAndNote(node, (await onNode(node, id, (client) => client.getTask({ task: id, extended }))).result);
      return { ...(output === "whole" ? await wholeOutput(node, id, view) : view), placedOn: node };
    },
    async terminate(ref, terminateOptions: TerminateOptions) {
      const entry = entryOf(ref);
      const id = idOf(entry, ref);
      const request = { task: id, alg: terminateOptions.alg === 2 ? TerminateAlgorithm.SIGNAL : TerminateAlgorithm.TERM_THEN_KILL, delayMs: terminateOptions.delayMs, repeat: terminateOptions.repeat, signal: terminateOptions.signal, cleanup: terminateOptions.cleanup };
      if (entry.kind === "all") {
        // A fan-out still starting nodes starts no more.
        if (id === entry.id) fanOuts.get(entry.id)?.stop.abort();
        let refusedAll = true;
        const view = await fanOutCall(
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
      return { ...viewAndNote(node, (await onNode(node, id, (client) => client.terminateTask(request))).result), placedOn: node };
    },
    async fetch(ref, remove, output = "inline") {
      const entry = entryOf(ref);
      const id = idOf(entry, ref);
      if (entry.kind === "all") {
        const view = await fanOutCall(entry, id, async (client) => (await client.fetchTask({ task: id, delete: remove })).result);
        if (remove && id === entry.id && view.nodes?.every((item) => item.view !== undefined || item.status === "not-started") === true) await record.remove(entry.id);
        return view;
      }
      const node = entry.nodes[0]!;
      // A "whole" fetch reads the rest of the output before the node deletes it.
      const view = viewAndNote(node, (await onNode(node, id, (client) => client.fetchTask({ task: id, delete: remove && output !== "whole" }))).result);
      let shown: TaskView = view;
      if (output === "whole") {
        shown = await wholeOutput(node, id, view);
        if (remove) await onNode(node, id, (client) => client.deleteTask({ task: id }));
      }
      if (remove && id === entry.id) {
        states.forget(node, entry.ids);
        await record.remove(entry.id);
      }
      return { ...shown, placedOn: node };
    },
    async remove(ref) {
      const entry = entryOf(ref);
      const id = idOf(entry, ref);
      if (entry.kind === "all") {
        const view = await fanOutCall(entry, id, async (client) => (await client.deleteTask({ task: id })).result);
        if (id === entry.id && view.nodes?.every((item) => item.view !== undefined || item.status === "not-started") === true) await record.remove(entry.id);
        return view;
      }
      const node = entry.nodes[0]!;
      let reply;
      try {
        reply = await onNode(node, id, (client) => client.deleteTask({ task: id }));
      } catch (error) {
        // The node no longer holds it (its retention deleted it): the manager lets the id go too.
        if (error instanceof DrceError && error.kind === "not-found" && id === entry.id) await record.remove(entry.id);
        throw error;
      }
      const view = viewAndNote(node, reply.result);
      if (id === entry.id) {
        states.forget(node, entry.ids);
        await record.remove(entry.id);
      }
      return { ...view, placedOn: node };
    },
    list: listed,
    async *run(input, signal) {
      if (shutdown.signal.aborted) throw new DrceError("unavailable", "the manager is shutting down");
      const spec = assignIds(input, new Set());
      if (record.find(spec.id) !== undefined) throw new DrceError("exists", `task id ${spec.id} is already used`, { legacyCode: ErrorCode.CreateTask });
      const placed = placeNew(spec, specDigest(spec));
      placing.set(spec.id, placed);
      let entry: PlacementEntry;
      try {
        entry = await placed;
      } finally {
        placing.delete(spec.id);
      }
      yield* entry.kind === "all" ? runAll(entry, spec, signal) : runOne(entry, spec, signal);
    },
    async *streamOutput(ref, offsets, follow, signal) {
      const entry = entryOf(ref);
      const id = idOf(entry, ref);
      yield* entry.kind === "all" ? streamAll(entry, id, offsets, follow, signal) : streamOne(entry.nodes[0]!, id, offsets, follow, signal);
    },
    watchEvents(afterSeq, ref, signal) {
      if (ref === "") return states.events.watch(afterSeq, signal);
      const entry = record.find(ref);
      const id = entry === undefined ? ref : idOf(entry, ref);
      return states.events.watch(afterSeq, signal, (event) => event.status.id === id || event.status.alias === ref);
    },
    async writeInput(ref, data) {
      const entry = entryOf(ref);
      const id = idOf(entry, ref);
      await Promise.all(entry.nodes.map((node) => pipes.write(addressOf(node), id, data)));
    },
    async endInput(ref) {
      const entry = entryOf(ref);
      const id = idOf(entry, ref);
      await Promise.all(entry.nodes.map((node) => pipes.end(addressOf(node), id)));
    },
  };
}
