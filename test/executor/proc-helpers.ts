import { spawn, type ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { parseProcStat, type ProcStat } from "../../src/executor/process-usage.js";

/** Reads one process's stat line from the real /proc, or undefined when it is gone. */
export async function procStat(pid: number): Promise<ProcStat | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, "latin1").catch(() => undefined);
  return text === undefined ? undefined : parseProcStat(text);
}

/** Tells whether a process is dead: gone from /proc, or a zombie waiting for its parent to reap it. */
export async function isDead(pid: number): Promise<boolean> {
  const stat = await procStat(pid);
  return stat === undefined || stat.state === "Z" || stat.state === "X";
}

/** Spawns a command as the leader of a new process group and waits until it exists. */
export async function spawnGroup(
  file: string,
  args: readonly string[],
  stdio: "ignore" | "pipe-stdin" | "pipe-stdout" = "ignore",
): Promise<ChildProcess & { pid: number }> {
  const child = spawn(file, args, {
    detached: true,
    stdio: stdio === "pipe-stdin" ? ["pipe", "ignore", "ignore"] : stdio === "pipe-stdout" ? ["ignore", "pipe", "ignore"] : "ignore",
  });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  spawned.add(child);
  return child as ChildProcess & { pid: number };
}

const spawned = new Set<ChildProcess>();

/** Kills every group spawned by {@link spawnGroup} that may still live (test cleanup). */
export function killSpawned(): void {
  for (const child of spawned) {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  spawned.clear();
}

/** Resolves once the child has written `marker` on stdout. */
export function waitForOutput(child: ChildProcess, marker: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes(marker)) resolve();
    });
    child.once("exit", () => reject(new Error(`exited before writing ${marker}`)));
  });
}
