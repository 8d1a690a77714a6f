import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** A `drce serve` running as a child process of the test. */
export interface ChildNode {
  readonly proc: ChildProcess;
  readonly url: string;
  readonly client: Client<typeof TaskService>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The node's log so far (JSON lines from stderr). */
  log(): string;
  /** Waits for the process to exit, failing after `timeoutMs`. */
  exit(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILLs the process if it still runs. */
  kill(): void;
}

/**
 * Starts `node --import tsx src/main.ts serve` on 127.0.0.1:0 with `--no-zmq` and the
 * given extra flags, and waits for its "listening" log line (up to a minute on a loaded host).
 */
export async function spawnServe(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<ChildNode> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv["DRCE_TOKEN"];
  if (env["DRCE_TEST_CRASH_AT"] === undefined) delete childEnv["DRCE_TEST_CRASH_AT"];
  const proc = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "serve", "--listen", "127.0.0.1:0", "--no-zmq", "--no-admin-zmq", "--log-level", "info", ...args], {
    cwd: repoRoot,
    env: childEnv,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  let log = "";
  proc.stderr!.setEncoding("utf8");
  proc.stderr!.on("data", (chunk: string) => (log += chunk));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start in time; log:\n${log}`)), 60_000);
    const check = (): void => {
      for (const line of log.split("\n")) {
        try {
          const entry = JSON.parse(line) as { msg?: string; url?: string };
          if (entry.msg === "drce node listening" && typeof entry.url === "string") {
            clearTimeout(timer);
            proc.stderr!.off("data", check);
            resolve(entry.url);
            return;
          }
        } catch {
          // not a JSON line (yet)
        }
      }
    };
    proc.stderr!.on("data", check);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`node exited before listening (code ${code}, signal ${signal}); log:\n${log}`));
    });
  });
  const client = createClient(TaskService, createConnectTransport({ baseUrl: url, httpVersion: "2" }));
  return {
    proc,
    url,
    client,
    exited,
    log: () => log,
    async exit(timeoutMs = 15_000) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`node did not exit in time; log:\n${log}`)), timeoutMs);
      });
      try {
        return await Promise.race([exited, deadline]);
      } finally {
        clearTimeout(timer);
      }
    },
    kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    },
  };
}
