import { constants } from "node:os";
import type { TerminateOptions } from "../domain/task.js";

/** The terminate algorithms of a terminate request, by name (legacy `alg`). */
export const TerminateAlg = {
  /** SIGTERM, then SIGKILL after each delay. */
  TermThenKill: 1,
  /** The request's own signal on each try. */
  Signal: 2,
} as const;

/**
 * How the node stops a task whose time ran out or whose usage passed a limit: SIGTERM, then
 * SIGKILL after a second, three tries, as a caller's default terminate does.
 */
export const expiryTerminate: TerminateOptions = Object.freeze({
  alg: TerminateAlg.TermThenKill,
  delayMs: 1000,
  repeat: 3,
  signal: constants.signals.SIGKILL,
  cleanup: false,
});

/**
 * How the node stops its running tasks when it shuts down: SIGTERM, then SIGKILL twice, the
 * tries spread over a quarter of the grace period each (at least 100 ms apart), so that the
 * group is gone before the grace period ends.
 */
export function shutdownTerminate(graceMs: number): TerminateOptions {
  return { alg: TerminateAlg.TermThenKill, delayMs: Math.max(100, Math.floor(graceMs / 4)), repeat: 2, signal: constants.signals.SIGKILL, cleanup: false };
}
