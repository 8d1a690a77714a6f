import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The drce command as a user runs it. */
export const drceBin = fileURLToPath(new URL("../../bin/drce.js", import.meta.url));

/** What a finished `drce` process left: its exit code and everything it printed. */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `drce ARGS` against the node at `server` to its end, without the caller's token
 * (a test that wants one passes it as a flag).
 */
export function runDrce(server: string, args: readonly string[]): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, DRCE_SERVER: server };
  delete env["DRCE_TOKEN"];
  const child = spawn(process.execPath, [drceBin, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
