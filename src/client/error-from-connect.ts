import { Code, ConnectError } from "@connectrpc/connect";
import { DrceError, type ErrorKind } from "../domain/errors.js";
import { errorKindCodes } from "../connect/errors.js";

const kindsByCode: ReadonlyMap<Code, ErrorKind> = new Map(Object.entries(errorKindCodes).map(([kind, code]) => [code, kind as ErrorKind]));

// Codes a node never answers with itself but a call can end with on the way.
const transportKinds: Readonly<Partial<Record<Code, ErrorKind>>> = {
  [Code.Unauthenticated]: "denied",
  [Code.DeadlineExceeded]: "unavailable",
  [Code.Canceled]: "unavailable",
  [Code.Aborted]: "unavailable",
  [Code.OutOfRange]: "invalid",
};

/**
 * The domain error a failed call to a node stands for: the kind its Connect code was mapped
 * from, the legacy error code of its `drce-error-code` metadata (else the kind's default), the
 * `retry-after` seconds of an exhausted node, and the node's message, so that a manager
 * forwarding a call answers its own caller as the node did. Anything that is not a
 * ConnectError is read as one first (`ConnectError.from`); the original stays as the cause.
 */
export function errorFromConnect(reason: unknown): DrceError {
  const error = ConnectError.from(reason);
  const kind = kindsByCode.get(error.code) ?? transportKinds[error.code] ?? "internal";
  const legacy = Number(error.metadata.get("drce-error-code") ?? "");
  const retryAfter = Number(error.metadata.get("retry-after") ?? "");
  return new DrceError(kind, error.rawMessage, {
    cause: reason,
    ...(Number.isInteger(legacy) && legacy > 0 ? { legacyCode: legacy } : {}),
    ...(kind === "exhausted" && Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
  });
}
