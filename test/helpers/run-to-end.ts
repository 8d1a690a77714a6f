import { spawn } from "node:child_process";

/** What a process run to its end left: its exit code and everything it wrote. */
export interface ProcessOutcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Where and how {@link runToEnd} starts the process. */
export interface RunToEndOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Runs argv (the program first) with stdin closed, collects its stdout and stderr as text,
 * and resolves once it has exited and both pipes are closed.
 */
export function runToEnd(argv: readonly string[], options: RunToEndOptions = {}): Promise<ProcessOutcome> {
  const child = spawn(argv[0] ?? "", argv.slice(1), { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
