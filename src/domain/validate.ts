import { posix } from "node:path";
import { DrceError, ErrorCode } from "./errors.js";
import { FileAction, type TaskSpec } from "./task.js";

/** Task ids and aliases: letters, digits, '.', '_', '-', at most 128 characters, not "." or "..". */
const idPattern = /^[A-Za-z0-9._-]{1,128}$/;

/** Tells whether a string may be a task id or alias. */
export function isValidTaskId(id: string): boolean {
  return idPattern.test(id) && id !== "." && id !== "..";
}

/** Variables a request may not set unless the operator allows them: they change how programs load or parse. */
export const dangerousEnvNames: readonly string[] = ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "BASH_ENV", "ENV", "IFS"];

const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Options of {@link validateSpec}. */
export interface ValidateOptions {
  /** Variable names allowed despite {@link dangerousEnvNames}. */
  readonly allowEnv?: readonly string[];
  /** Maximum subtask nesting depth. */
  readonly maxDepth?: number;
  /** Absolute directories (resolved) in which files of local tasks may be named by absolute name. */
  readonly allowedDirs?: readonly string[];
  /** Maximum number of tasks in one tree. */
  readonly maxTasks?: number;
}

/**
 * Checks a task tree for what can be known without touching the host: ids, aliases,
 * commands, environment names, file names and numbers. Throws a DrceError ("invalid")
 * naming the first problem.
 */
export function validateSpec(spec: TaskSpec, options: ValidateOptions = {}): void {
  const seen = new Set<string>();
  let count = 0;
  const maxDepth = options.maxDepth ?? 16;
  const maxTasks = options.maxTasks ?? 1000;
  const allowEnv = new Set(options.allowEnv ?? []);
  const visit = (task: TaskSpec, depth: number): void => {
    if (depth > maxDepth) throw invalid(`subtasks nested deeper than ${maxDepth}`);
    if (++count > maxTasks) throw invalid(`more than ${maxTasks} tasks in one request`);
    if (task.id !== "") {
      if (!isValidTaskId(task.id)) throw invalid(`task id ${JSON.stringify(task.id)} is not allowed`, ErrorCode.TaskIdRange);
      if (seen.has(task.id)) throw invalid(`task id ${task.id} appears twice in one request`, ErrorCode.TaskIdRange);
      seen.add(task.id);
    }
    if (task.alias !== "" && !isValidTaskId(task.alias)) throw invalid(`alias ${JSON.stringify(task.alias)} is not allowed`);
    if (task.command === "" && task.argv.length === 0) throw invalid("the task has no command");
    if (task.command.includes("\0") || task.argv.some((a) => a.includes("\0"))) throw invalid("the command holds a NUL byte");
    for (const [name, value] of Object.entries(task.env)) {
      if (!envNamePattern.test(name)) throw invalid(`environment variable name ${JSON.stringify(name)} is not allowed`, ErrorCode.SetEnvironment);
      if (value.includes("\0")) throw invalid(`environment variable ${name} holds a NUL byte`, ErrorCode.SetEnvironment);
      if (dangerousEnvNames.includes(name) && !allowEnv.has(name)) {
        throw invalid(`environment variable ${name} is refused by this node`, ErrorCode.SetEnvironment);
      }
    }
    const dirs = task.session.type === "local" ? (options.allowedDirs ?? []) : [];
    for (const file of task.files) checkFileName(file.name, fileActionCode(file.action), dirs);
    for (const [field, value] of [
      ["timeout", task.timeoutSeconds],
      ["time_max", task.timeMaxMs],
      ["ttl", task.ttlMs],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 0) throw invalid(`${field} must be a non-negative integer`);
    }
    if (task.mode !== 1 && task.mode !== 2) throw invalid("tmode must be 1 (sync) or 2 (async)");
    for (const sub of task.subtasks) visit(sub, depth + 1);
  };
  visit(spec, 0);
}

/**
 * Checks a file name of a task's `files` lexically: relative, no `..` segment, no NUL; or
 * absolute inside one of `allowedDirs`. Symlinks are checked against the real directory by
 * the executor. Throws DrceError with `code` (201 unless told).
 */
export function checkFileName(name: string, code: number = ErrorCode.FileCreate, allowedDirs: readonly string[] = []): void {
  const problem = name.startsWith("/") && allowedRootOf(name, allowedDirs) !== undefined ? undefined : fileNameProblem(name);
  if (problem !== undefined) throw invalid(`file ${JSON.stringify(name)}: ${problem}`, code);
}

/**
 * The allowed directory an absolute file name lies in, by its letters: no NUL, no `..`
 * segment, strictly below the directory. Undefined when it lies in none.
 */
export function allowedRootOf(name: string, allowedDirs: readonly string[]): string | undefined {
  if (!name.startsWith("/") || name.includes("\0") || name.split("/").some((part) => part === "..")) return undefined;
  const target = posix.normalize(name);
  return allowedDirs.find((dir) => {
    const rel = posix.relative(posix.normalize(dir), target);
    return rel !== "" && rel !== ".." && !rel.startsWith("../") && !posix.isAbsolute(rel);
  });
}

/**
 * The error code of a refused file name for a file's action bits: that of the first step
 * that would use the name, in the order they run (delete before 202, create 201, read
 * after 203, delete after 204); 201 for a file with no action.
 */
export function fileActionCode(action: number): number {
  if (action & FileAction.DeleteBefore) return ErrorCode.FileDeleteBefore;
  if (action & FileAction.CreateBefore) return ErrorCode.FileCreate;
  if (action & FileAction.ReadAfter) return ErrorCode.FileRead;
  if (action & FileAction.DeleteAfter) return ErrorCode.FileDeleteAfter;
  return ErrorCode.FileCreate;
}

/** Returns why a file name is refused, or undefined when it is acceptable. */
export function fileNameProblem(name: string): string | undefined {
  if (name === "") return "empty name";
  if (name.includes("\0")) return "NUL byte in name";
  if (name.startsWith("/")) return "absolute path";
  if (name.split("/").some((part) => part === "..")) return "path escapes the working directory";
  if (name.split("/").every((part) => part === "." || part === "")) return "names the working directory itself";
  return undefined;
}

function invalid(message: string, legacyCode: number = ErrorCode.BadInput): DrceError {
  return new DrceError("invalid", message, { legacyCode });
}
