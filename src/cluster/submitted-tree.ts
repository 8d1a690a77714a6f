import { DrceError, ErrorCode } from "../domain/errors.js";
import { fromStoredSpec, toStoredSpec } from "../domain/spec-json.js";
import type { TaskSpec } from "../domain/task.js";
import { isValidTaskId } from "../domain/validate.js";
import type { KeptRollout } from "./placement-record.js";

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
export function treeIds(spec: TaskSpec): string[] {
  return [spec.id, ...spec.subtasks.flatMap(treeIds)];
}

/** The spec a node gets: the same tree without the placement, which is the manager's alone. */
export function forNode(spec: TaskSpec): TaskSpec {
  const { placement: _placement, ...rest } = spec;
  return rest as TaskSpec;
}

/**
 * Gives every task of a submitted tree its id: a given id is checked (its characters, and once per
 * request: legacy 14), a missing one is generated, unused in `taken` and by `known`.
 */
export function assignIds(spec: TaskSpec, taken: Set<string>, known: (id: string) => boolean): TaskSpec {
  if (spec.id !== "" && !isValidTaskId(spec.id)) throw new DrceError("invalid", `task id ${JSON.stringify(spec.id)} is not allowed`, { legacyCode: ErrorCode.TaskIdRange });
  if (spec.id !== "" && taken.has(spec.id)) throw new DrceError("invalid", `task id ${spec.id} appears twice in one request`, { legacyCode: ErrorCode.TaskIdRange });
  const id = spec.id !== "" ? spec.id : generateId((candidate) => taken.has(candidate) || known(candidate));
  taken.add(id);
  return { ...spec, id, subtasks: spec.subtasks.map((sub) => assignIds(sub, taken, known)) };
}

/** Whether a tree carries secrets (an SSH password, key or passphrase) anywhere. */
export function carriesSecrets(spec: TaskSpec): boolean {
  const session = spec.session;
  if (session.type === "ssh" && (session.password !== "" || session.privateKey !== "" || session.passphrase !== "")) return true;
  return spec.subtasks.some(carriesSecrets);
}

/** What a fan-out's placement entry keeps for a manager restart during the rollout. */
export function keptRollout(spec: TaskSpec): KeptRollout {
  return { spec: toStoredSpec(forNode(spec)), placement: spec.placement ?? {}, secrets: carriesSecrets(spec) };
}

/** The tree a kept rollout sends to the nodes it has not reached, with its placement back. */
export function rolloutSpec(kept: KeptRollout): TaskSpec {
  return { ...fromStoredSpec(kept.spec), placement: kept.placement };
}
