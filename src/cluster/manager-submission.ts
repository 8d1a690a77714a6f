import { specToProto } from "../client/spec-to-proto.js";
import type { SubmitOutcome } from "../core/api.js";
import { DrceError, ErrorCode } from "../domain/errors.js";
import { specDigest } from "../domain/spec-json.js";
import { TaskMode } from "../domain/states.js";
import type { TaskSpec } from "../domain/task.js";
import type { OutputMode, TaskView } from "../domain/view.js";
import type { FanOut } from "./fan-out.js";
import type { Forwarding } from "./forwarding.js";
import type { ManagerContext } from "./manager-context.js";
import type { MergedViews } from "./merged-views.js";
import type { NodeCalls } from "./node-calls.js";
import type { PlacementEntry } from "./placement-record.js";
import { withRemoteOutputs } from "./remote-output.js";
import { assignIds, forNode, treeIds } from "./submitted-tree.js";

/** The parts a submission goes through. */
export interface SubmissionParts {
  readonly forwarding: Forwarding;
  readonly fanOut: FanOut;
  readonly calls: NodeCalls;
  readonly views: MergedViews;
}

/** TaskCore's submit on a manager (see createSubmission). */
export type ManagerSubmit = (input: TaskSpec, signal?: AbortSignal, output?: OutputMode) => Promise<SubmitOutcome>;

/**
 * Creates the manager's submit: ids checked and made, then a repeated identical request is
 * answered with the task it made (another one with the same id is refused, legacy 104), and
 * a new tree is placed, recorded durably and only then forwarded, to one node or fanned out.
 */
export function createSubmission(context: ManagerContext, parts: SubmissionParts): ManagerSubmit {
  const { record, fanOuts } = context;
  const { forwarding, fanOut, calls, views } = parts;

  /** A fanned-out task's view as the output mode asks: for "whole", every node's output, read from the nodes as the reply is sent. */
  const shown = (view: TaskView, id: string, output: OutputMode): Promise<TaskView> | TaskView =>
    output === "whole" ? withRemoteOutputs(view, id, { clientOf: (node) => context.tasksOf(node), gather: (node, nodeView) => calls.wholeOutput(node, id, nodeView), logger: context.logger }) : view;

  /** An existing task's answer to a repeated identical submission. */
  const resubmitted = async (entry: PlacementEntry, spec: TaskSpec, signal: AbortSignal | undefined, output: OutputMode): Promise<SubmitOutcome> => {
    if (entry.kind === "one") {
      const node = entry.nodes[0]!;
      // The node answers a repeated submission itself: the same task, waited for when sync.
      const reply = await calls.onNode(node, spec.id, (client) => client.submitTask({ task: specToProto(forNode(spec)) }, signal === undefined ? {} : { signal }));
      const view = context.viewAndNote(node, reply.result);
      return { view: { ...(output === "whole" ? await calls.streamedOutput(node, spec.id, view) : view), placedOn: node }, existing: true };
    }
    if (spec.mode === TaskMode.Sync) await fanOuts.get(entry.id)?.done;
    return { view: await shown(await views.fanOutCall(entry, spec.id, async (client) => (await client.getTask({ task: spec.id })).result), spec.id, output), existing: true };
  };

  return async (input, signal, output = "inline") => {
    if (context.shutdown.aborted) throw new DrceError("unavailable", "the manager is shutting down");
    const spec = assignIds(input, new Set(), (id) => record.find(id) !== undefined);
    const digest = specDigest(spec);
    await forwarding.settled(spec.id);
    const existing = record.find(spec.id);
    if (existing !== undefined) {
      if (existing.id !== spec.id || existing.digest !== digest) throw new DrceError("exists", `task id ${spec.id} is already used by a different request`, { legacyCode: ErrorCode.CreateTask });
      return resubmitted(existing, spec, signal, output);
    }
    for (const id of treeIds(spec).slice(1)) if (record.find(id) !== undefined) throw new DrceError("exists", `task id ${id} is already used`, { legacyCode: ErrorCode.CreateTask });
    const entry = await forwarding.place(spec, digest);
    if (entry.kind === "all") return { view: await shown(await fanOut.submit(entry, spec, signal), spec.id, output), existing: false };
    const { entry: final, reply } = await forwarding.forwardOne(entry, spec, (client) => client.submitTask({ task: specToProto(forNode(spec)) }, signal === undefined ? {} : { signal }));
    const node = final.nodes[0]!;
    const view = context.viewAndNote(node, reply.result);
    return { view: { ...(output === "whole" ? await calls.streamedOutput(node, spec.id, view) : view), placedOn: node }, existing: reply.existing };
  };
}
