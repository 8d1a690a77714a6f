// The ssh ControlMaster baseline: what a user runs instead of drce. A private loopback sshd
// (test/helpers/sshd.ts, `MaxSessions 64`, `MaxStartups 100:30:200`) accepts a key login as an
// account whose login shell is /bin/sh; one master connection (`ssh -M -N -S <path>`) is kept
// open, and every measured call is one `ssh -S <path> ... <command>` process, as a user types it.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { appendFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import { generateKey, shellUser, sshdAvailable, sshdUnavailableReason, startSshd } from "../test/helpers/sshd.js";
import { measureTransfer, procMemory, runConcurrent, sleep, type Transfer } from "./lib.js";

/** A running ControlMaster baseline. */
export interface SshControlMaster {
  /** Runs one `ssh -S <path> ... true` process to its exit; resolves with its wall time in ms. */
  call(): Promise<number>;
  /** Runs `count` calls of `true` with `concurrency` processes in flight; resolves with calls per second. */
  throughput(count: number, concurrency: number): Promise<number>;
  /** Runs `ssh -S <path> ... head -c <bytes> /dev/zero` into a pipe and counts what arrives. */
  transfer(bytes: number): Promise<Transfer>;
  /** The RSS of the sshd listener process, in bytes. */
  listenerRss(): Promise<number>;
  /** Closes the master connection and stops the sshd. */
  stop(): Promise<void>;
}

/** Why the baseline cannot run here, or undefined when it can. */
export function sshControlMasterUnavailableReason(): string | undefined {
  if (!existsSync("/usr/bin/ssh")) return "/usr/bin/ssh is missing";
  return sshdAvailable() ? undefined : sshdUnavailableReason();
}

/** Runs a process to its exit and rejects on a non-zero status, with what it wrote on stderr. */
async function runToExit(file: string, args: readonly string[]): Promise<void> {
  const child = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, "exit")) as [number | null];
  if (code !== 0) throw new Error(`${file} ${args.join(" ")} exited with ${code}: ${stderr.trim()}`);
}

/**
 * Starts the sshd and the master connection, and resolves once the master answers
 * `ssh -O check` (polled with a deadline).
 */
export async function startSshControlMaster(): Promise<SshControlMaster> {
  const reason = sshControlMasterUnavailableReason();
  if (reason !== undefined) throw new Error(`no ssh ControlMaster baseline here: ${reason}`);
  const sshd = await startSshd({ maxSessions: 64, maxStartups: "100:30:200", shellAccount: true });
  let master: ChildProcess | undefined;
  try {
    const key = await generateKey(sshd.dir, "bench_key");
    await appendFile(join(sshd.dir, "keys", `${shellUser}.keys`), await readFile(key.publicKeyFile));
    const controlPath = join(sshd.dir, "control.sock");
    const common = [
      "-p",
      String(sshd.port),
      "-i",
      key.privateKeyFile,
      "-o",
      `UserKnownHostsFile=${sshd.knownHostsFile}`,
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      "BatchMode=yes",
      "-o",
      "LogLevel=ERROR",
    ];
    const target = `${shellUser}@127.0.0.1`;
    // -M without -f keeps the master as this process's child, so stop() ends exactly it.
    master = spawn("ssh", ["-M", "-N", "-S", controlPath, "-o", "ControlPersist=no", ...common, target], { stdio: ["ignore", "ignore", "pipe"] });
    let masterLog = "";
    master.stderr?.setEncoding("utf8").on("data", (chunk: string) => (masterLog += chunk));
    let masterExited = false;
    const masterExit = once(master, "exit").then(() => (masterExited = true));
    const client = (command: string): string[] => ["-S", controlPath, ...common, target, command];
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (masterExited) throw new Error(`the ssh master exited: ${masterLog.trim()} ${sshd.log().slice(-500)}`);
      try {
        await runToExit("ssh", ["-S", controlPath, "-O", "check", target]);
        break;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`the ssh master did not come up: ${(error as Error).message}`);
        await sleep(20);
      }
    }
    const started = master;
    const call = async (): Promise<number> => {
      const begun = performance.now();
      await runToExit("ssh", client("true"));
      return performance.now() - begun;
    };
    return {
      call,
      async throughput(count, concurrency) {
        const ms = await runConcurrent(count, concurrency, async () => void (await call()));
        return (count * 1000) / ms;
      },
      async transfer(bytes) {
        const transfer = await measureTransfer("ssh", client(`head -c ${bytes} /dev/zero`));
        if (transfer.bytes !== bytes) throw new Error(`ssh delivered ${transfer.bytes} of ${bytes} bytes (exit ${transfer.exitCode}): ${sshd.log().slice(-500)}`);
        return transfer;
      },
      listenerRss: () => procMemory(sshd.pid, "VmRSS"),
      async stop() {
        if (!masterExited) {
          started.kill("SIGTERM");
          await masterExit;
        }
        await sshd.killConnections();
        await sshd.stop();
      },
    };
  } catch (error) {
    master?.kill("SIGKILL");
    await sshd.stop();
    throw error;
  }
}
