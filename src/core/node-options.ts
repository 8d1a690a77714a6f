import { cpus, hostname } from "node:os";
import { absolutePath, duration, integer, listOption, text, valueOption, type OptionValues } from "../domain/option-table.js";

/**
 * The options the task core and the node's own reports read, each declared once; `drce serve`
 * takes them among its own (see serve-options.ts) and the core's option types are picks of them.
 */
export const nodeOptions = {
  /** Node name shown in results. */
  name: valueOption({ flag: "name", arg: "NAME", default: () => hostname(), defaultHelp: "host name", parse: text, help: "node name in results" }),
  /** Tasks running at once; the rest queue (state 8). */
  maxConcurrent: valueOption({ flag: "max-concurrent", arg: "N", default: () => Math.max(4, cpus().length * 8), defaultHelp: "8 per CPU, at least 4", parse: integer(1), help: "tasks running at once" }),
  /** Tasks waiting at most; past it submission is refused. */
  maxQueue: valueOption({ flag: "max-queue", arg: "N", default: () => 10_000, defaultHelp: "10000", parse: integer(), help: "tasks waiting at most" }),
  /** Bytes kept per output stream (head and tail past it); zero: unlimited. */
  maxOutputBytes: valueOption({ flag: "max-output-bytes", arg: "N", default: () => 256 * 1024 * 1024, defaultHelp: "268435456", parse: integer(), help: "bytes kept per output stream, head+tail past it; 0 = all" }),
  /** Bytes of each output stream a unary reply (sync SubmitTask, GetTask, FetchTask) carries at most; zero: all. */
  inlineOutputBytes: valueOption({ flag: "inline-output-bytes", arg: "N", default: () => 1024 * 1024, defaultHelp: "1048576", parse: integer(), help: "bytes per stream a unary reply carries, the rest is streamed; 0 = all" }),
  /** Ceiling on a task's running time, ms; zero: none. */
  maxTaskMs: valueOption({ flag: "max-task-ms", arg: "N", default: () => 0, defaultHelp: "0 = none", parse: integer(), help: "ceiling on any task's running time" }),
  /** Largest request body accepted, bytes. */
  maxRequestBytes: valueOption({ flag: "max-request-bytes", arg: "N", default: () => 16 * 1024 * 1024, defaultHelp: "16777216", parse: integer(), help: "largest request body" }),
  /** How long a finished task tree is kept, ms; zero: no bound by age. */
  retainFinishedMs: valueOption({ flag: "retain-finished", arg: "DURATION", default: () => 7 * 86_400_000, defaultHelp: "7d", parse: duration, help: "delete finished tasks this long after they ended; 0 = keep" }),
  /** Tasks held at most before the oldest finished trees are deleted; zero: no bound by count. */
  retainMaxTasks: valueOption({ flag: "retain-max-tasks", arg: "N", default: () => 100_000, defaultHelp: "100000", parse: integer(), help: "past N tasks held, delete the oldest finished ones; 0 = no bound" }),
  /** Largest file returned by a read-after action, bytes. */
  maxFileBytes: valueOption({ flag: "max-file-bytes", arg: "N", default: () => 16 * 1024 * 1024, defaultHelp: "16777216", parse: integer(), help: "largest file returned by a read-after action" }),
  /** Absolute directories a task's work_dir may name, besides its own directory. */
  allowedDirs: listOption({ flag: "allow-dir", arg: "DIR", parse: absolutePath, help: "a directory tasks may use as work_dir and name files in" }),
  /** Dangerous environment names tasks may set anyway. */
  allowEnv: listOption({ flag: "allow-env", arg: "NAME", parse: text, help: "allow a refused variable such as LD_PRELOAD" }),
  /** Task events kept for watchers that resume. */
  eventHistory: valueOption({ flag: "event-history", arg: "N", default: () => 10_000, defaultHelp: "10000", parse: integer(1), help: "task events kept for resuming watchers" }),
  /** Resource reports kept for watchers that resume. */
  reportHistory: valueOption({ flag: "report-history", arg: "N", default: () => 1000, defaultHelp: "1000", parse: integer(1), help: "resource reports kept for resuming watchers" }),
  /** How often running tasks and the host are sampled, ms. */
  sampleIntervalMs: valueOption({ flag: "sample-interval-ms", arg: "N", default: () => 1000, defaultHelp: "1000", parse: integer(50), help: "usage sampling interval" }),
  /** Bearer token every API requires; empty: none. */
  token: valueOption({ flag: "token", arg: "T", env: "DRCE_TOKEN", fromFile: { flag: "token-file", arg: "F" }, default: () => "", parse: text, help: 'require "Authorization: Bearer T"' }),
};

/** The values of {@link nodeOptions}: what the core and the node's reports may be configured with. */
export type NodeOptions = OptionValues<typeof nodeOptions>;
