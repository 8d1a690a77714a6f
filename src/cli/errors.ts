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
