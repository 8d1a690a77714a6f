import { constants } from "node:os";
import type { Writable } from "node:stream";
import type { TerminateOptions } from "../../src/domain/task.js";
import { localFiles } from "../../src/executor/local-files.js";
import type { ExecHandle, ExecOutcome, ExecRequest, Runner, TaskUsage } from "../../src/executor/runner.js";

/** One step of a scripted process. */
export type ScriptStep =
  /** Writes bytes to a stream, with backpressure, as a process would. */
  | { readonly out: "stdout" | "stderr"; readonly data: string | Uint8Array }
  /** Waits until the test opens the gate of this name (see {@link ScriptedRunner.open}). */
  | { readonly gate: string }
  /** Hangs until it is signalled (a terminate), then ends as the signal ends it. */
  | { readonly hang: true }
  /** Exits with this status. */
  | { readonly exit: number };

/** A scripted process: its steps, and what the runner does at its start. */
export interface Script {
  readonly steps: readonly ScriptStep[];
  /** The first usage sample, given with the spawn record. */
  readonly usage?: TaskUsage;
  /** Start fails as a runner failure (rejects start) with this error. */
  readonly startError?: unknown;
  /** The process cannot start: the outcome is "failed" with this legacy code and message. */
  readonly spawnFailure?: { readonly errorCode: number; readonly message: string };
}

/** A start the runner saw, with what happened to it. */
export interface ScriptedStart {
  readonly request: ExecRequest;
  /** Terminate requests it received, in order. */
  readonly terminations: TerminateOptions[];
  /** Bytes written to its stdin. */
  readonly input: Uint8Array[];
  /** True once its stdin was closed. */
  inputEnded: boolean;
  /** True once the runner handed the core its handle (the core runs it a few microtasks later). */
  handed: boolean;
}

/** A runner whose processes are scripts: no process is started, every step is the test's. */
export interface ScriptedRunner extends Runner {
  /** Names a script: a task whose command is `name` runs it. A task with no script exits 0 at once. */
  define(name: string, script: Script | readonly ScriptStep[]): void;
  /** Opens a gate: every process waiting at it (or coming to it later) goes on. */
  open(gate: string): void;
  /** The starts so far, in order. */
  readonly starts: ScriptedStart[];
  /** The start of the task with this id. */
  startOf(id: string): ScriptedStart | undefined;
  /** True once the task with this id has its process handed to the core. */
  handed(id: string): boolean;
}

/** Writes to a sink and waits for it to take the bytes. */
function write(sink: Writable, data: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => sink.write(typeof data === "string" ? Buffer.from(data) : data, (error) => (error ? reject(error) : resolve())));
}

const signalNames = Object.fromEntries(Object.entries(constants.signals).map(([name, number]) => [number, name])) as Record<number, string>;

/** Creates a scripted runner; its file operations are the local ones, in the test's directories. */
export function createScriptedRunner(): ScriptedRunner {
  const scripts = new Map<string, Script>();
  const gates = new Map<string, { open: boolean; waiters: (() => void)[] }>();
  const starts: ScriptedStart[] = [];
  let nextPid = 100_000;
  const gate = (name: string): { open: boolean; waiters: (() => void)[] } => {
    let found = gates.get(name);
    if (found === undefined) gates.set(name, (found = { open: false, waiters: [] }));
    return found;
  };
  return {
    files: localFiles,
    starts,
    startOf: (id) => starts.find((start) => start.request.spec.id === id),
    handed: (id) => starts.some((start) => start.request.spec.id === id && start.handed),
    define(name, script) {
      scripts.set(name, "steps" in script ? script : { steps: script });
    },
    open(name) {
      const found = gate(name);
      found.open = true;
      for (const wake of found.waiters.splice(0)) wake();
    },
    async start(request): Promise<ExecHandle> {
      const script = scripts.get(request.spec.command) ?? { steps: [{ exit: 0 }] };
      if (script.startError !== undefined) throw script.startError;
      const start: ScriptedStart = { request, terminations: [], input: [], inputEnded: false, handed: false };
      starts.push(start);
      const idle: ExecHandle = { done: Promise.resolve({ kind: "exited", exitStatus: 0, signal: "", escapedPids: [] }), terminate: async () => undefined, writeInput: async () => undefined, endInput: () => undefined };
      if (script.spawnFailure !== undefined) return { ...idle, done: Promise.resolve({ kind: "failed", ...script.spawnFailure }) };
      const pid = nextPid++;
      await request.onSpawn({ pid, pgid: pid, procStartTicks: 0, usage: script.usage });
      let signalled: ((signal: number) => void) | undefined;
      let pendingSignal: number | undefined;
      const done = (async (): Promise<ExecOutcome> => {
        for (const step of script.steps) {
          if ("out" in step) await write(step.out === "stdout" ? request.stdout : request.stderr, step.data);
          else if ("gate" in step) {
            const found = gate(step.gate);
            if (!found.open) await new Promise<void>((resolve) => found.waiters.push(resolve));
          } else if ("hang" in step) {
            const signal = pendingSignal ?? (await new Promise<number>((resolve) => (signalled = resolve)));
            return { kind: "exited", exitStatus: 128 + signal, signal: signalNames[signal] ?? "", escapedPids: [] };
          } else return { kind: "exited", exitStatus: step.exit, signal: "", escapedPids: [] };
        }
        return { kind: "exited", exitStatus: 0, signal: "", escapedPids: [] };
      })();
      start.handed = true;
      return {
        done,
        async terminate(options) {
          start.terminations.push(options);
          // Algorithm 1 starts with SIGTERM; algorithm 2 sends the request's signal.
          const signal = options.alg === 2 ? options.signal : constants.signals.SIGTERM;
          if (signalled !== undefined) signalled(signal);
          else pendingSignal ??= signal;
          await done;
        },
        async writeInput(data) {
          start.input.push(data);
        },
        endInput() {
          start.inputEnded = true;
        },
        sampleUsage: async () => script.usage,
      };
    },
  };
}
