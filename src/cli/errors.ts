import { Code, type ConnectError } from "@connectrpc/connect";

/** A command line that cannot be understood; drce exits 2 and points at the help. */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * A failure on the caller's machine (a local file cannot be read or written);
 * drce exits 1.
 */
export class LocalError extends Error {
  override name = "LocalError";
}

/**
 * An RPC error in the words drce prints after "drce: ": the Connect code's name
 * ("not_found"), the node's message, and the legacy error code when there is one.
 */
export function describeRpcError(error: ConnectError): string {
  const name = (Code[error.code] ?? String(error.code)).replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
  const legacy = error.metadata.get("drce-error-code");
  const message = error.rawMessage || "(no message)";
  return `${name}: ${legacy === null || legacy === "" || legacy === "0" ? message : `${message} (error ${legacy})`}`;
}
