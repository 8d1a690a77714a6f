import { Code, ConnectError } from "@connectrpc/connect";
import { DrceError } from "../domain/errors.js";
import { errorFromConnect } from "./error-from-connect.js";

/**
 * A call to a node that failed: a bad request, an unknown id, a refused limit, a missing
 * token, or a node that could not be reached. It carries the Connect code the call ended
 * with (`code`), the kind of failure (`kind`, as the node's domain names it), the legacy DRCE
 * error code (`legacyCode`, from the `drce-error-code` metadata, else the kind's default) and,
 * for a full queue, the `retryAfterMs` the node asked for. The ConnectError stays as `cause`.
 * A task that ran and failed is not an error: it is a result.
 */
export class DrceCallError extends DrceError {
  override name = "DrceCallError";
  /** The Connect code the call ended with (`Code.NotFound`, `Code.InvalidArgument`, ...). */
  readonly code: Code;

  constructor(error: DrceError, code: Code) {
    super(error.kind, error.message, {
      legacyCode: error.legacyCode,
      cause: error.cause,
      ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
    });
    this.code = code;
  }
}

/**
 * The {@link DrceCallError} a failed call stands for. Any rejection of a generated client's
 * call can be passed (a ConnectError, an AbortError, a socket error); one that already is a
 * DrceCallError is returned as it is.
 */
export function callErrorFrom(reason: unknown): DrceCallError {
  if (reason instanceof DrceCallError) return reason;
  return new DrceCallError(errorFromConnect(reason), ConnectError.from(reason).code);
}

/** Tells whether a failure is a {@link DrceCallError} with the given Connect code. */
export function isCallError(reason: unknown, code?: Code): reason is DrceCallError {
  return reason instanceof DrceCallError && (code === undefined || reason.code === code);
}
