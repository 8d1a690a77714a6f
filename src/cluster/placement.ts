import { DrceError, ErrorCode } from "../domain/errors.js";
import { usageFigures } from "../domain/placement.js";
import type { NodeCount, Placement, PlacementMode, UsageFigure } from "../domain/placement.js";

/** A data node as placement sees it. */
export interface Candidate {
  /** Node name, unique in the cluster. */
  readonly name: string;
  /** The node's labels (`--label key=value`). */
  readonly labels: Readonly<Record<string, string>>;
  /** Membership state: up, suspect (missed heartbeats) or down. */
  readonly state: "up" | "suspect" | "down";
  /** The eight figures of its latest report, percent. */
  readonly usage: Readonly<Record<UsageFigure, number>>;
  /** Slots the node can start a task in without queueing it. */
  readonly freeSlots: number;
}

/** The manager's defaults (--mode, --weights). */
export interface PlacementDefaults {
  /** The mode of a task whose placement names none. */
  readonly mode: PlacementMode;
  /** The balanced weights of a task whose placement gives none; empty means load average only. */
  readonly weights: Readonly<Partial<Record<UsageFigure, number>>>;
}

/**
 * Where a task goes: one node, or (mode all) every selected node in name order, with the
 * selected ones that are down listed apart (they get "unreachable" items).
 */
export type PlacementChoice =
  | { readonly kind: "one"; readonly node: string }
  | { readonly kind: "all"; readonly nodes: readonly string[]; readonly down: readonly string[]; readonly unknown: readonly string[] };

/** Chooses the data nodes of a task; one placer per manager (it keeps the round-robin cursor). */
export interface Placer {
  /**
   * Chooses; throws DrceError carrying ErrorCode.NoTargetNode (5000, empty selection / nothing
   * up), NodeModeNotSupported (5001), LimitsOnEveryNode (5002). `exclude` lists nodes that
   * provably never accepted this task (a retry).
   */
  place(placement: Placement | undefined, candidates: readonly Candidate[], exclude?: ReadonlySet<string>): PlacementChoice;
}

/** The modes a placer knows, in the order of the proto enum. */
export const placementModes: readonly PlacementMode[] = ["balanced", "round-robin", "random", "all"];

/** True when `mode` is one of the four modes a placer knows. */
export function isPlacementMode(mode: string): mode is PlacementMode {
  return (placementModes as readonly string[]).includes(mode);
}

/**
 * A mode value no placer knows, carried through from a caller's request (a legacy route role
 * or a proto enum number this build does not have) so that placing the task, not decoding
 * it, refuses it with 5001 and names what was asked for. `described` says where it came
 * from, e.g. "legacy route role 3".
 */
export function unsupportedMode(described: string): PlacementMode {
  // Deliberately outside the union: isPlacementMode() is false for it, and the placer says so.
  return described as PlacementMode;
}

/** The balanced weights when neither the request nor --weights gives any: load average only. */
export const defaultWeights: Readonly<Partial<Record<UsageFigure, number>>> = { loadavg: 1 };

/**
 * Creates a placer. `random` returns a number in [0, 1) (Math.random by default) and is used
 * by the random mode only.
 */
export function createPlacer(defaults: PlacementDefaults, random: () => number = Math.random): Placer {
  if (!isPlacementMode(defaults.mode)) throw unsupported(defaults.mode);
  // The last node round robin gave a task; the next one is the first name after it.
  let cursor: string | undefined;

  function chooseOne(mode: PlacementMode, pool: readonly Candidate[], placement: Placement | undefined): string {
    switch (mode) {
      case "balanced": {
        const weights = nonEmpty(placement?.weights) ?? nonEmpty(defaults.weights) ?? defaultWeights;
        // A node with a free slot starts the task at once; when none has one, every node queues
        // it and the least loaded one is still the best choice.
        const free = pool.filter((candidate) => candidate.freeSlots > 0);
        const scored = (free.length > 0 ? free : pool).map((candidate) => ({ name: candidate.name, score: score(candidate, weights) }));
        scored.sort((a, b) => a.score - b.score || compareNames(a.name, b.name));
        return scored[0]!.name;
      }
      case "round-robin": {
        const names = pool.map((candidate) => candidate.name).sort(compareNames);
        const next = names.find((name) => cursor === undefined || compareNames(name, cursor) > 0) ?? names[0]!;
        cursor = next;
        return next;
      }
      case "random": {
        const names = pool.map((candidate) => candidate.name).sort(compareNames);
        // Clamped: a generator returning exactly 1 must not pick past the end.
        const index = Math.min(names.length - 1, Math.max(0, Math.floor(random() * names.length)));
        return names[index]!;
      }
      case "all":
        throw new Error("mode all places on every node, not on one");
    }
  }

  return {
    place(placement, candidates, exclude) {
      const mode = placement?.mode ?? defaults.mode;
      if (!isPlacementMode(mode)) throw unsupported(mode);
      const named = placement?.nodes ?? [];
      const known = new Map(candidates.map((candidate) => [candidate.name, candidate]));
      const unknown = named.filter((name) => !known.has(name));
      let selected = named.length > 0 ? uniqueNames(named).flatMap((name) => (known.has(name) ? [known.get(name)!] : [])) : [...candidates];
      const labels = Object.entries(placement?.labels ?? {});
      selected = selected.filter((candidate) => labels.every(([key, value]) => candidate.labels[key] === value));
      if (selected.length === 0) throw noTarget(describeSelection(placement, unknown));

      if (mode === "all") {
        const sorted = [...selected].sort((a, b) => compareNames(a.name, b.name));
        return {
          kind: "all",
          nodes: sorted.filter((candidate) => candidate.state !== "down").map((candidate) => candidate.name),
          down: sorted.filter((candidate) => candidate.state === "down").map((candidate) => candidate.name),
          unknown: [...new Set(unknown)].sort(compareNames),
        };
      }

      const eligible = selected.filter((candidate) => !(exclude?.has(candidate.name) ?? false));
      const limits = Object.entries(placement?.limits ?? {}) as [UsageFigure, number][];
      let overLimits = false;
      // Up nodes first; a suspect node may be gone, so it gets a task only when no up node is left.
      for (const state of ["up", "suspect"] as const) {
        const tier = eligible.filter((candidate) => candidate.state === state);
        if (tier.length === 0) continue;
        const within = tier.filter((candidate) => limits.every(([figure, bound]) => !(candidate.usage[figure] > bound)));
        if (within.length === 0) {
          overLimits = true;
          continue;
        }
        return { kind: "one", node: chooseOne(mode, within, placement) };
      }
      if (overLimits) {
        throw new DrceError("exhausted", `resource limits exceeded on every candidate node (${limits.map(([figure, bound]) => `${figure}<=${bound}`).join(", ")})`, {
          legacyCode: ErrorCode.LimitsOnEveryNode,
        });
      }
      throw noTarget(eligible.length < selected.length ? "every selected node that is up already failed to take the task" : "every selected node is down");
    },
  };
}

/**
 * Parses `--weights loadavg=1,cpu=0.5`: figure=weight pairs, comma separated, each figure one of
 * the eight usage figures at most once, each weight a finite number zero or greater.
 */
export function parseWeights(text: string): Partial<Record<UsageFigure, number>> {
  const weights: Partial<Record<UsageFigure, number>> = {};
  for (const [key, value] of pairs(text, "weights", "figure=weight, e.g. loadavg=1,cpu=0.5")) {
    if (!(usageFigures as readonly string[]).includes(key)) {
      throw invalid(`weights: unknown usage figure "${key}" (expected one of ${usageFigures.join(", ")})`);
    }
    const figure = key as UsageFigure;
    if (figure in weights) throw invalid(`weights: figure "${figure}" is given twice`);
    const weight = value.trim() === "" ? Number.NaN : Number(value);
    if (!Number.isFinite(weight) || weight < 0) throw invalid(`weights: the weight of "${figure}" must be a number zero or greater, not "${value}"`);
    weights[figure] = weight;
  }
  return weights;
}

/**
 * Parses a label selector `env=prod,os=linux`: key=value pairs, comma separated, each key
 * non-empty and given at most once; a node matches when it carries every pair.
 */
export function parseSelector(text: string): Record<string, string> {
  const selector: Record<string, string> = {};
  for (const [key, value] of pairs(text, "selector", "key=value, e.g. env=prod,os=linux")) {
    if (Object.hasOwn(selector, key)) throw invalid(`selector: label "${key}" is given twice`);
    selector[key] = value;
  }
  return selector;
}

/**
 * Parses a node count: a whole number of nodes (`5`, at least 1) or a percentage of the
 * selected ones (`20%`, 1 to 100).
 */
export function parseNodeCount(text: string): NodeCount {
  const trimmed = text.trim();
  const percent = /^(\d+)%$/.exec(trimmed);
  if (percent !== null) {
    const value = Number(percent[1]);
    if (value < 1 || value > 100) throw invalid(`node count: a percentage must be 1% to 100%, not "${text}"`);
    return { kind: "percent", value };
  }
  if (/^\d+$/.test(trimmed)) {
    const value = Number(trimmed);
    if (value < 1 || !Number.isSafeInteger(value)) throw invalid(`node count: a number of nodes must be a whole number of at least 1, not "${text}"`);
    return { kind: "count", value };
  }
  throw invalid(`node count: expected a number of nodes (e.g. 5) or a percentage (e.g. 20%), not "${text}"`);
}

/** How many nodes a count means out of `total`: a percentage is rounded up, and either is at least one. */
export function resolveNodeCount(count: NodeCount, total: number): number {
  const value = count.kind === "count" ? count.value : Math.ceil((total * count.value) / 100);
  return Math.max(1, value);
}

/** Orders node names the same way everywhere (code units, so that it does not depend on the locale). */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function score(candidate: Candidate, weights: Readonly<Partial<Record<UsageFigure, number>>>): number {
  let sum = 0;
  for (const figure of usageFigures) {
    const weight = weights[figure];
    if (weight !== undefined) sum += weight * candidate.usage[figure];
  }
  return sum;
}

function nonEmpty<T extends object>(record: T | undefined): T | undefined {
  return record !== undefined && Object.keys(record).length > 0 ? record : undefined;
}

function uniqueNames(names: readonly string[]): string[] {
  return [...new Set(names)];
}

function pairs(text: string, what: string, expected: string): [string, string][] {
  if (text.trim() === "") throw invalid(`${what}: empty (expected ${expected})`);
  return text.split(",").map((item) => {
    const at = item.indexOf("=");
    const key = at < 0 ? "" : item.slice(0, at).trim();
    if (at < 0 || key === "") throw invalid(`${what}: "${item}" is not ${expected}`);
    return [key, item.slice(at + 1).trim()];
  });
}

function describeSelection(placement: Placement | undefined, unknown: readonly string[]): string {
  const parts: string[] = [];
  if ((placement?.nodes?.length ?? 0) > 0) parts.push(`nodes ${placement!.nodes!.join(",")}`);
  const labels = Object.entries(placement?.labels ?? {});
  if (labels.length > 0) parts.push(`labels ${labels.map(([key, value]) => `${key}=${value}`).join(",")}`);
  const unknownText = unknown.length > 0 ? `; unknown: ${unknown.join(",")}` : "";
  return parts.length > 0 ? `no node matches ${parts.join(" and ")}${unknownText}` : "the manager has no data node";
}

function noTarget(detail: string): DrceError {
  return new DrceError("unavailable", `no target node available: ${detail}`, { legacyCode: ErrorCode.NoTargetNode });
}

function unsupported(mode: string): DrceError {
  return new DrceError("invalid", `node mode not supported: ${mode} (expected one of ${placementModes.join(", ")})`, { legacyCode: ErrorCode.NodeModeNotSupported });
}

function invalid(message: string): DrceError {
  return new DrceError("invalid", message, { legacyCode: ErrorCode.BadInput });
}
