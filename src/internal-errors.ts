/**
 * The parts of a node that report internal errors: "task" for the task core (a failure while
 * running a task that is neither the caller's fault nor an expected outcome), "containment"
 * for the search of a task's escaped processes.
 */
export type InternalErrorPart = "task" | "containment";

/**
 * The node's internal-error path: a failure no caller is told of in detail is logged at error
 * level (with its stack) and counted by part, so that `/metrics` shows it
 * (`drce_internal_errors_total`). Each part gets it as a callback, never as a global.
 */
export interface InternalErrors {
  /** Logs `error` with `message` and `details`, and counts it for `part`. */
  report(part: InternalErrorPart, message: string, error: unknown, details?: Readonly<Record<string, unknown>>): void;
  /** Internal errors reported since the node started, by part (every part present, zero included). */
  counts(): Readonly<Record<InternalErrorPart, number>>;
}

/** Where the internal-error path logs: the node's pino logger, or anything with its `error`. */
export interface InternalErrorLogger {
  /** Logs `fields` and `message` at error level. */
  error(fields: Record<string, unknown>, message: string): void;
}

/** Creates a node's internal-error path over its logger. */
export function createInternalErrors(logger: InternalErrorLogger): InternalErrors {
  if (typeof logger?.error !== "function") throw new TypeError("createInternalErrors: logger is required");
  const counts: Record<InternalErrorPart, number> = { task: 0, containment: 0 };
  return {
    report(part, message, error, details = {}) {
      counts[part] += 1;
      logger.error({ ...details, err: error instanceof Error ? error.stack : String(error) }, message);
    },
    counts: () => ({ ...counts }),
  };
}
