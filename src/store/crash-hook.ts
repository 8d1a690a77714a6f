/**
 * The test-only crash hook: called at a named write point ("accepted", "spawned", "final"),
 * it stops the node when that is the point it was set for.
 */
export type CrashHook = (point: string | undefined) => void;

/** Makes the crash hook for `crashAt` (unset in production: the hook then does nothing). */
export function createCrashHook(crashAt: string | undefined): CrashHook {
  return (point) => {
    if (point !== undefined && crashAt === point) {
      // The crash hook stops the node dead, as SIGKILL would, to test recovery.
      process.kill(process.pid, "SIGKILL");
    }
  };
}
