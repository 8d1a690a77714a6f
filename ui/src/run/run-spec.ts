import { create } from "@bufbuild/protobuf";
import { NodeCountSchema, PlacementMode, PlacementSchema, TaskMode, TaskSpecSchema, type NodeCount, type Placement, type TaskSpec } from "../../../gen/drce/v1/task_pb.js";

/** How the Run form names the command: one shell line, or an argument vector of one word a line. */
export type CommandForm = "shell" | "argv";

/** Where a manager runs the task: its own choice of one node, every node, named nodes, or nodes by labels. */
export type Targeting = "manager" | "all" | "nodes" | "labels";

/** What the Run form holds, as typed (text fields unparsed). */
export interface RunFormValues {
  /** Whether the command is a shell line or an argument vector. */
  readonly form: CommandForm;
  /** The shell line, or the argument vector with one word a line. */
  readonly command: string;
  /** Environment variables, one `NAME=VALUE` a line. */
  readonly env: string;
  /** The working directory on the node; empty for the task's own. */
  readonly workDir: string;
  /** Time limit in seconds; empty for none. */
  readonly timeout: string;
  /** Bytes given to the command's stdin (as UTF-8); empty closes it at once. */
  readonly stdin: string;
  /** Submitted to run in the background, rather than attached with its output here. */
  readonly async: boolean;
  /** Where a manager runs it; a data node runs it itself whatever this says. */
  readonly targeting: Targeting;
  /** Node names, separated by commas or spaces (targeting "nodes"). */
  readonly nodes: string;
  /** A label selector `K=V[,K=V]` (targeting "labels"). */
  readonly labels: string;
  /** `N` or `N%`; empty for no bound (a fan-out only). */
  readonly maxConcurrency: string;
  /** `N` or `N%`; empty for no bound (a fan-out only). */
  readonly maxErrors: string;
}

/** The empty form: a shell line, run attached, placed by the manager's own choice. */
export const emptyRunForm: RunFormValues = { form: "shell", command: "", env: "", workDir: "", timeout: "", stdin: "", async: false, targeting: "manager", nodes: "", labels: "", maxConcurrency: "", maxErrors: "" };

/** A field of the Run form that cannot be sent as typed, and why, for the form to show beside it. */
export class RunFormError extends Error {
  override name = "RunFormError";
  /** The form field (its input's id) the message is about. */
  readonly field: string;

  /** Makes the error for `field` with a sentence saying what is wrong. */
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

/** The task and whether it runs on several nodes, as the form asks for it. */
export interface RunRequest {
  /** The task to send (`RunTask` when attached, `SubmitTask` when submitted). */
  readonly spec: TaskSpec;
  /** The manager runs it on every selected node (a fan-out), so its progress is per node. */
  readonly fanOut: boolean;
}

/**
 * Reads the form into the task it asks for, as `drce run` reads its flags: a shell line or
 * an argument vector, `NAME=VALUE` variables, a timeout in whole seconds, stdin sent with
 * the task, and on a manager a placement (every node, names or a label selector make a
 * fan-out, which alone takes the rate controls). Throws {@link RunFormError} for the first
 * field that cannot be sent.
 */
export function runRequestOf(values: RunFormValues, manager: boolean): RunRequest {
  const spec = create(TaskSpecSchema, { mode: values.async ? TaskMode.ASYNC : TaskMode.SYNC });
  if (values.form === "shell") {
    if (values.command.trim() === "") throw new RunFormError("run-command", "The command is empty: type a shell command line.");
    spec.command = values.command;
  } else {
    const argv = values.command.split("\n").map((word) => word.replace(/\r$/, "")).filter((word) => word !== "");
    if (argv.length === 0) throw new RunFormError("run-command", "The argument vector is empty: type the program, then one argument a line.");
    spec.argv = argv;
  }
  spec.env = parseEnv(values.env);
  spec.workDir = values.workDir.trim();
  if (values.timeout.trim() !== "") {
    const seconds = Number(values.timeout.trim());
    if (!Number.isInteger(seconds) || seconds <= 0 || seconds > 0xffff_ffff) throw new RunFormError("run-timeout", `Timeout ${JSON.stringify(values.timeout)}: a whole number of seconds, at least 1.`);
    spec.timeoutSeconds = seconds;
  }
  // Stdin goes with the task, as drce run sends it to a fan-out: every node gets the same bytes.
  spec.input = new TextEncoder().encode(values.stdin);
  if (!manager) return { spec, fanOut: false };
  const placement = placementOf(values);
  if (placement !== undefined) spec.placement = placement;
  return { spec, fanOut: placement?.mode === PlacementMode.ALL };
}

function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [index, raw] of text.split("\n").entries()) {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "") continue;
    const equals = line.indexOf("=");
    const name = equals < 0 ? line : line.slice(0, equals);
    if (equals < 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new RunFormError("run-env", `Environment line ${index + 1} (${JSON.stringify(line)}): write NAME=VALUE, NAME of letters, digits and _.`);
    env[name] = line.slice(equals + 1);
  }
  return env;
}

function placementOf(values: RunFormValues): Placement | undefined {
  const maxConcurrency = nodeCount(values.maxConcurrency, "run-max-concurrency", "Max concurrency");
  const maxErrors = nodeCount(values.maxErrors, "run-max-errors", "Max errors");
  if (values.targeting === "manager") {
    if (maxConcurrency !== undefined || maxErrors !== undefined) throw new RunFormError(maxConcurrency !== undefined ? "run-max-concurrency" : "run-max-errors", "The rate controls belong to a run on several nodes: choose all nodes, names or labels.");
    return undefined;
  }
  const placement = create(PlacementSchema, { mode: PlacementMode.ALL });
  if (values.targeting === "nodes") {
    const names = values.nodes.split(/[\s,]+/).filter((name) => name !== "");
    if (names.length === 0) throw new RunFormError("run-nodes", "No node named: type one name or more, separated by commas.");
    placement.nodes = names;
  }
  if (values.targeting === "labels") placement.labels = parseSelector(values.labels);
  if (maxConcurrency !== undefined) placement.maxConcurrency = maxConcurrency;
  if (maxErrors !== undefined) placement.maxErrors = maxErrors;
  return placement;
}

function parseSelector(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const pairs = text.split(",").map((pair) => pair.trim()).filter((pair) => pair !== "");
  if (pairs.length === 0) throw new RunFormError("run-labels", "No label selector: type KEY=VALUE pairs separated by commas, such as env=prod,os=linux.");
  for (const pair of pairs) {
    const equals = pair.indexOf("=");
    const key = pair.slice(0, Math.max(0, equals)).trim();
    const value = pair.slice(equals + 1).trim();
    if (equals < 0 || key === "" || value === "") throw new RunFormError("run-labels", `Label ${JSON.stringify(pair)}: write KEY=VALUE, neither of them empty.`);
    if (Object.hasOwn(labels, key)) throw new RunFormError("run-labels", `Label "${key}" is given twice.`);
    labels[key] = value;
  }
  return labels;
}

function nodeCount(text: string, field: string, title: string): NodeCount | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  const match = /^(\d+)(%?)$/.exec(trimmed);
  const value = Number(match?.[1]);
  const percent = match?.[2] === "%";
  if (match === null || value < 1 || (percent && value > 100) || value > 0xffff_ffff) throw new RunFormError(field, `${title} ${JSON.stringify(text)}: a number of nodes (at least 1) or a percentage of them (1% to 100%).`);
  return create(NodeCountSchema, { value: percent ? { case: "percent", value } : { case: "count", value } });
}
