import type { NodeIdentity, SubmitOutcome, TaskCore } from "../../src/core/api.js";
import type { TaskState } from "../../src/domain/states.js";
import type { TaskSpec, TerminateOptions } from "../../src/domain/task.js";
import { testStatus } from "../helpers/status.js";
import type { TaskView } from "../../src/domain/view.js";

/** The node identity the gateway tests answer with. */
export const testIdentity: NodeIdentity = { host: "127.0.0.1", port: 8470, node: "test-node" };

export { testStatus } from "../helpers/status.js";

/** A view of a spec's tree in one state. */
export function viewOf(spec: TaskSpec, state: TaskState): TaskView {
  return { status: testStatus({ id: spec.id, state, mode: spec.mode }), timeMs: 0, subtasks: spec.subtasks.map((s) => viewOf(s, state)) };
}

/** One recorded call of the fake core. */
export type CoreCall =
  | { method: "submit"; spec: TaskSpec; signal: AbortSignal | undefined }
  | { method: "check"; ref: string; extended: boolean }
  | { method: "terminate"; ref: string; options: TerminateOptions }
  | { method: "fetch"; ref: string; remove: boolean }
  | { method: "remove"; ref: string };

/** Behaviour of each method: return a view, or throw. Unset methods answer a finished task. */
export interface FakeBehaviour {
  submit?: (spec: TaskSpec, signal: AbortSignal | undefined) => Promise<SubmitOutcome> | SubmitOutcome;
  check?: (ref: string, extended: boolean) => Promise<TaskView> | TaskView;
  terminate?: (ref: string, options: TerminateOptions) => Promise<TaskView> | TaskView;
  fetch?: (ref: string, remove: boolean) => Promise<TaskView> | TaskView;
  remove?: (ref: string) => Promise<TaskView> | TaskView;
}

/** A TaskCore that records calls and answers as scripted; streaming methods are unsupported. */
export function createFakeCore(behaviour: FakeBehaviour = {}): TaskCore & { calls: CoreCall[] } {
  const calls: CoreCall[] = [];
  const finished = (ref: string): TaskView => ({ status: testStatus({ id: ref, state: 0 }), timeMs: 1, subtasks: [] });
  const unsupported = (): never => {
    throw new Error("not supported by the fake core");
  };
  return {
    calls,
    async submit(spec, signal) {
      calls.push({ method: "submit", spec, signal });
      return behaviour.submit ? behaviour.submit(spec, signal) : { view: viewOf(spec, 0), existing: false };
    },
    async check(ref, extended) {
      calls.push({ method: "check", ref, extended });
      return behaviour.check ? behaviour.check(ref, extended) : finished(ref);
    },
    async terminate(ref, options) {
      calls.push({ method: "terminate", ref, options });
      return behaviour.terminate ? behaviour.terminate(ref, options) : { ...finished(ref), status: testStatus({ id: ref, state: 4 }) };
    },
    async fetch(ref, remove) {
      calls.push({ method: "fetch", ref, remove });
      return behaviour.fetch ? behaviour.fetch(ref, remove) : finished(ref);
    },
    async remove(ref) {
      calls.push({ method: "remove", ref });
      return behaviour.remove ? behaviour.remove(ref) : { ...finished(ref), status: testStatus({ id: ref, state: 9 }) };
    },
    list: () => [],
    run: unsupported,
    streamOutput: unsupported,
    watchEvents: unsupported,
    writeInput: unsupported,
    endInput: unsupported,
  };
}
