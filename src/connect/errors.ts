import { Code, ConnectError } from "@connectrpc/connect";
import { DrceError, type ErrorKind } from "../domain/errors.js";

/** The Connect code of each error kind; a client reads it back into the kind. */
export const errorKindCodes: Readonly<Record<ErrorKind, Code>> = {
  invalid: Code.InvalidArgument,
  "not-found": Code.NotFound,
  exists: Code.AlreadyExists,
  precondition: Code.FailedPrecondition,
  denied: Code.PermissionDenied,
  exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  internal: Code.Internal,
};

/**
 * Maps any error to a ConnectError, once, at the boundary. DrceError messages are safe
 * for callers; anything else becomes a generic Internal error (no stack, no paths).
 * The legacy error code travels in the `drce-error-code` metadata.
 */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof DrceError) {
    const metadata = new Headers({ "drce-error-code": String(error.legacyCode) });
    if (error.retryAfterMs !== undefined) metadata.set("retry-after", String(Math.ceil(error.retryAfterMs / 1000)));
    return new ConnectError(error.message, errorKindCodes[error.kind], metadata, undefined, error);
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, error);
}
