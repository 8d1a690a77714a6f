import { dirname, join } from "node:path";
import type { StreamName } from "../domain/task.js";

/**
 * Where a store keeps a task's files, for tests and tools that look at the disk; the node
 * itself goes through the store's operations.
 */
export interface TaskStorePaths {
  /** The task's directory. */
  taskDir(id: string): string;
  /** The spool file of a stream. */
  outputPath(id: string, stream: StreamName): string;
  /** Where the n-th returned file is kept. */
  filePath(id: string, index: number): string;
}

/**
 * The layout of the tasks root: a directory per task, named by its id, holding
 * `request.json`, `status.json`, `stdout`, `stderr`, returned files under `files/`, and the
 * default working directory `work/`.
 */
export interface TaskLayout extends TaskStorePaths {
  /** The tasks root directory, `<dataDir>/tasks`. */
  readonly root: string;
  /** A task's `request.json`. */
  requestPath(id: string): string;
  /** A task's `status.json`. */
  statusPath(id: string): string;
  /** The directory of a task's returned files. */
  filesDir(id: string): string;
  /** The default working directory of a task. */
  workDir(id: string): string;
  /** The directories above a task's default working directory, innermost first. */
  workDirParents(id: string): readonly string[];
}

/** Gives the paths of the tasks kept under `root`. */
export function createTaskLayout(root: string): TaskLayout {
  const taskDir = (id: string): string => join(root, id);
  return {
    root,
    taskDir,
    requestPath: (id) => join(taskDir(id), "request.json"),
    statusPath: (id) => join(taskDir(id), "status.json"),
    outputPath: (id, stream) => join(taskDir(id), stream),
    filesDir: (id) => join(taskDir(id), "files"),
    filePath: (id, index) => join(taskDir(id), "files", String(index)),
    workDir: (id) => join(taskDir(id), "work"),
    workDirParents: (id) => [taskDir(id), root, dirname(root)],
  };
}
