import { DrceError, ErrorCode } from "../domain/errors.js";
import type { NodeCount, NodeResult } from "../domain/placement.js";
import { resolveNodeCount } from "./placement.js";

/** The rate controls of a fan-out, and where its per-node results go as they come. */
export interface RolloutOptions {
  /** At most this many `start` calls pending at once (a percentage of the nodes given); unset: all at once. */
  readonly maxConcurrency?: NodeCount;
  /** Once this many results are errors, no further node starts; unset: never stop. */
  readonly maxErrors?: NodeCount;
  /** Aborting stops starting nodes; started ones are left to `start`'s own signal. */
  readonly signal: AbortSignal;
  /** Called with each node's result as soon as it is known (for streaming node-result events); it must not throw. */
  readonly onResult?: (result: NodeResult) => void;
}

/**
 * True when a node's result counts against max-errors: anything but "finished" with exit
 * status 0 and error code 0.
 */
export function isNodeError(result: NodeResult): boolean {
  if (result.status !== "finished" || result.errorCode !== 0) return true;
  const status = result.view?.status;
  return status !== undefined && (status.exitStatus !== 0 || status.errorCode !== 0);
}

/**
 * Runs `start` for each node under the rate controls; resolves with one result per node in
 * the order given ("not-started" for the nodes the max-errors stop skipped). A result counts
 * as an error unless its status is "finished" with exit status 0 and error code 0.
 */
export function rollout(nodes: readonly string[], options: RolloutOptions, start: (node: string, signal: AbortSignal) => Promise<NodeResult>): Promise<NodeResult[]> {
  const total = nodes.length;
  const concurrency = options.maxConcurrency === undefined ? Math.max(1, total) : resolveNodeCount(options.maxConcurrency, total);
  const maxErrors = options.maxErrors === undefined ? undefined : resolveNodeCount(options.maxErrors, total);
  const results: (NodeResult | undefined)[] = new Array<NodeResult | undefined>(total).fill(undefined);
  let next = 0;
  let pending = 0;
  let errors = 0;
  // Why no further node starts, fixed when the stop happens so that every skipped node says the same.
  let stopped: string | undefined;

  return new Promise((resolve) => {
    const finish = (index: number, result: NodeResult): void => {
      results[index] = result;
      if (isNodeError(result)) {
        errors += 1;
        if (maxErrors !== undefined && errors >= maxErrors) stopped ??= `not started: ${errors} nodes failed (max errors ${maxErrors})`;
      }
      options.onResult?.(result);
    };

    const pump = (): void => {
      if (options.signal.aborted) stopped ??= "not started: the fan-out was stopped";
      while (stopped === undefined && pending < concurrency && next < total) {
        const index = next++;
        const node = nodes[index]!;
        pending += 1;
        let started: Promise<NodeResult>;
        try {
          started = start(node, options.signal);
        } catch (error) {
          started = Promise.reject(error);
        }
        started.then(
          (result) => settle(index, result),
          (error: unknown) => settle(index, failure(node, error)),
        );
      }
      if (pending > 0) return;
      for (let index = 0; index < total; index++) {
        if (results[index] !== undefined) continue;
        // Only a stop leaves a node without a result once nothing is pending.
        finish(index, { node: nodes[index]!, status: "not-started", errorCode: 0, errorMessage: stopped ?? "not started" });
      }
      resolve(results as NodeResult[]);
    };

    const settle = (index: number, result: NodeResult): void => {
      pending -= 1;
      finish(index, result);
      pump();
    };

    pump();
  });
}

// A `start` that throws instead of answering with a result still gives its node an item: the
// fan-out reports every node, never a silent gap.
function failure(node: string, error: unknown): NodeResult {
  const code = error instanceof DrceError ? error.legacyCode : ErrorCode.InternalFo;
  const message = error instanceof DrceError ? error.message : error instanceof Error ? error.message : String(error);
  return { node, status: "failed", errorCode: code === 0 ? ErrorCode.InternalFo : code, errorMessage: `node ${node}: ${message}` };
}
