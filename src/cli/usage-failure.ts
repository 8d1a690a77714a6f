import { ExitCode } from "./exit-code-values.js";
import type { CliIo } from "./io.js";

/**
 * Writes a usage error to stderr (`drce run: MESSAGE`, then where the help is) and returns
 * the usage exit code, 2. An empty command names drce itself.
 */
export async function usageFailure(io: CliIo, command: string, message: string): Promise<number> {
  const prefix = command === "" ? "drce" : `drce ${command}`;
  io.stderr.write(`${prefix}: ${message}\nTry 'drce help${command === "" ? "" : ` ${command}`}'.\n`);
  return ExitCode.Usage;
}
