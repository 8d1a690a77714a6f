import { Code, ConnectError } from "@connectrpc/connect";
import { LocalError, UsageError } from "./errors.js";
import { ExitCode, exitCodeForError } from "./exit-codes.js";
import type { CliIo } from "./io.js";
import { usageFailure } from "./usage-failure.js";

/**
 * Maps a command's failure to a message on stderr and an exit code, once: a usage error
 * exits 2, a local file error 1, a closed stdout 141, an RPC error 3 (NotFound) or 125 with
 * its Connect code's name and legacy error code, anything else 125.
 */
export function reportFailure(io: CliIo, command: string, error: unknown): number | Promise<number> {
  if (error instanceof UsageError) return usageFailure(io, command, error.message);
  if (error instanceof LocalError) {
    io.stderr.write(`drce: ${error.message}\n`);
    return ExitCode.LocalFailure;
  }
  if ((error as NodeJS.ErrnoException | undefined)?.code === "EPIPE") return ExitCode.BrokenPipe;
  if (error instanceof ConnectError) {
    io.stderr.write(`drce: ${codeName(error.code)}: ${describeConnectError(error)}\n`);
    return exitCodeForError(error);
  }
  io.stderr.write(`drce: ${error instanceof Error ? error.message : String(error)}\n`);
  return ExitCode.NodeError;
}

/** "not_found", "unavailable", ...: the Connect protocol's names of the codes. */
function codeName(code: Code): string {
  return (Code[code] ?? String(code)).replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

function describeConnectError(error: ConnectError): string {
  const legacy = error.metadata.get("drce-error-code");
  const message = error.rawMessage || "(no message)";
  return legacy === null || legacy === "" || legacy === "0" ? message : `${message} (error ${legacy})`;
}
