import { specToProto } from "../client/spec-to-proto.js";
import { errorFromConnect } from "../client/error-from-connect.js";
import { DrceError, ErrorCode } from "../domain/errors.js";
import type { NodeResult, Placement } from "../domain/placement.js";
import { isFinalState, TaskMode } from "../domain/states.js";
import type { TaskSpec } from "../domain/task.js";
import type { TaskView } from "../domain/view.js";
import type { ManagerContext } from "./manager-context.js";
import type { MergedViews } from "./merged-views.js";
import { fanOutController } from "./fan-out-signal.js";
import { failureReason } from "./node-failure.js";
import { failedResult, mergeFanOut, nodeResultOf, notStartedResult, unreachableResult } from "./node-results.js";
import { resolveNodeCount } from "./placement.js";
import type { PlacementEntry } from "./placement-record.js";
import { rollout } from "./rollout.js";
import { forNode, rolloutSpec } from "./submitted-tree.js";

/** Milliseconds between two polls of an async fan-out's task on a node. */
const pollSteps = [100, 200, 400, 800, 1000];

/** Starts one node's share of a fan-out: resolves to its result; calls `accepted` once the node took it. */
export type StartShare = (node: string, signal: AbortSignal, accepted: () => void) => Promise<NodeResult>;

/** Fan-out execution: a tree placed on several nodes, started through the rollout with its rate controls. */
export interface FanOut {
  /**
   * Starts a fan-out this process runs (registered in the context's fan-outs until it ends):
   * `done` resolves to every node's result, `firstWave` once each node of the first wave
   * accepted its share or ended it. Nodes the rollout did not start are recorded as skipped.
   */
  start(entry: PlacementEntry, spec: TaskSpec, start: StartShare, onResult?: (result: NodeResult) => void): { done: Promise<NodeResult[]>; firstWave: Promise<void> };
  /** A node's result from a call that failed while starting its share (timed out, failed, unreachable). */
  startFailure(node: string, id: string, error: unknown, signal: AbortSignal): NodeResult;
  /**
   * Carries on the rollout of an entry placed before the manager restarted (it still keeps
   * its request): every node of the entry is sent the tree again, which a node that holds
   * it answers with its task, so only nodes never reached start it, under the same rate controls.
   */
  resume(entry: PlacementEntry): void;
  /** Submits a fanned-out tree: sync waits for every node, async answers once the first wave accepted. */
  submit(entry: PlacementEntry, spec: TaskSpec, signal: AbortSignal | undefined): Promise<TaskView>;
}

/** Creates the fan-out execution over the manager's context. */
export function createFanOut(context: ManagerContext, views: MergedViews): FanOut {
  const { members, transport, record, states, options, fanOuts, shutdown, logger } = context;

  const start: FanOut["start"] = (entry, spec, startShare, onResult) => {
    // Every node's calls listen to it (without a gather time, it is their calls' signal).
    const stop = fanOutController();
    const onShutdown = () => stop.abort();
    shutdown.addEventListener("abort", onShutdown, { once: true });
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
        return await startShare(node, nodeSignal, accepted);
      } finally {
        accepted();
      }
    }).then(async (results) => {
      shutdown.removeEventListener("abort", onShutdown);
      waveDone();
      // A rollout stopped by the manager's shutdown is not over: its kept request stays for the next start.
      if (shutdown.aborted) return results;
      const notStarted = results.filter((result) => result.status === "not-started").map((result) => result.node);
      if (notStarted.length > 0 || entry.rollout !== undefined) {
        const { rollout: _done, ...rest } = entry;
        await record.put({ ...rest, nodes: entry.nodes.filter((name) => !notStarted.includes(name)), skipped: { ...entry.skipped, ...Object.fromEntries(notStarted.map((name) => [name, "not-started" as const])) } });
      }
      return results;
    }).finally(() => fanOuts.delete(entry.id));
    fanOuts.set(entry.id, { items, stop, done: done.then(() => undefined) });
    return { done, firstWave };
  };

  const startFailure: FanOut["startFailure"] = (node, id, error, signal) => {
    if (signal.aborted && !shutdown.aborted) return { node, status: "timed-out", errorCode: ErrorCode.NoTargetNode, errorMessage: `node ${node} did not answer within the gather time` };
    const delivery = error instanceof DrceError ? "answered" : transport.delivery(error);
    if (delivery === "answered") {
      const mapped = error instanceof DrceError ? error : errorFromConnect(error);
      return failedResult(node, mapped.legacyCode, mapped.message);
    }
    return unreachableResult(node, failureReason(error), states.view(node, id));
  };

  /**
   * One node's share of a fan-out: the tree sent (a node answers a repeated identical
   * submission with the task it holds, so sending again after a restart starts nothing
   * twice), then followed until it ends.
   */
  const shareOf = (spec: TaskSpec): StartShare => {
    const proto = specToProto(forNode(spec));
    return async (node, nodeSignal, accepted) => {
      const startedAt = performance.now();
      try {
        const client = context.tasksOf(node);
        const reply = await client.submitTask({ task: proto }, { signal: nodeSignal });
        members.placed(node);
        options.onDispatch?.(node, performance.now() - startedAt);
        let view = context.viewAndNote(node, reply.result);
        accepted();
        // An async share holds its place in the rollout until it ends, so max-concurrency counts running tasks.
        for (let step = 0; !isFinalState(view.status.state); step++) {
          await new Promise((resolve) => setTimeout(resolve, pollSteps[Math.min(step, pollSteps.length - 1)]));
          if (nodeSignal.aborted) throw nodeSignal.reason;
          view = context.viewAndNote(node, (await client.getTask({ task: spec.id }, { signal: nodeSignal })).result);
        }
        return nodeResultOf(node, view);
      } catch (error) {
        return startFailure(node, spec.id, error, nodeSignal);
      }
    };
  };

  return {
    start,
    startFailure,
    resume(entry) {
      const kept = entry.rollout;
      if (kept === undefined || fanOuts.has(entry.id)) return;
      const spec = rolloutSpec(kept);
      const send = shareOf(spec);
      logger.info({ task: entry.id, nodes: entry.nodes.length }, "carrying on the rollout of a fan-out placed before the manager restarted");
      const { done } = start(entry, spec, async (node, nodeSignal, accepted) => {
        if (!kept.secrets) return send(node, nodeSignal, accepted);
        // Secrets are not kept: a node that holds the task is followed, one that never got it is not started.
        try {
          await context.tasksOf(node).getTask({ task: spec.id }, { signal: nodeSignal });
        } catch (error) {
          if (transport.delivery(error) === "answered" && errorFromConnect(error).kind === "not-found") return notStartedResult(node, "not started: the manager restarted during the rollout and does not keep the request's secrets");
          return startFailure(node, spec.id, error, nodeSignal);
        }
        return send(node, nodeSignal, accepted);
      });
      done.catch((error: unknown) => logger.error({ task: entry.id, err: String(error) }, "the resumed rollout of a fan-out failed"));
    },
    async submit(entry, spec, signal) {
      const sync = spec.mode === TaskMode.Sync;
      const { done, firstWave } = start(entry, spec, shareOf(spec));
      if (sync) {
        const abandon = new Promise<never>((_, reject) => signal?.addEventListener("abort", () => reject(new DrceError("unavailable", "the caller stopped waiting")), { once: true }));
        const results = await Promise.race([done, abandon]);
        return mergeFanOut({ id: spec.id, alias: spec.alias, mode: spec.mode, placedAt: entry.placedAt, items: [...results, ...views.skippedItems(entry)] });
      }
      await firstWave;
      const state = fanOuts.get(entry.id);
      const items = entry.nodes.map((name) => state?.items.get(name) ?? notStartedResult(name, "not started yet (max concurrency)"));
      return mergeFanOut({ id: spec.id, alias: spec.alias, mode: spec.mode, placedAt: entry.placedAt, items: [...items, ...views.skippedItems(entry)], pending: fanOuts.has(entry.id) });
    },
  };
}
