import { fstatSync, statSync } from "node:fs";

/**
 * Whether the file descriptor is one that can only give EOF: `/dev/null`, or a regular file
 * of no bytes. `drce run` then closes the task's stdin at once instead of forwarding it
 * (a program reading it gets EOF either way), which spares the process the stdin stream and
 * the `SendTaskInput` call. Anything else (a pipe, a terminal, a socket, a file with bytes,
 * a descriptor that cannot be examined, none at all) is not known to be empty.
 */
export function holdsNothing(fd: number | undefined): boolean {
  if (fd === undefined) return false;
  try {
    const stats = fstatSync(fd);
    // A file's size, not what is left after its offset: a file with bytes is forwarded as today.
    if (stats.isFile()) return stats.size === 0;
    if (!stats.isCharacterDevice()) return false;
    const devNull = statSync("/dev/null", { throwIfNoEntry: false });
    return devNull !== undefined && devNull.isCharacterDevice() && devNull.rdev === stats.rdev;
  } catch {
    // A closed or foreign descriptor: the stream decides, as before.
    return false;
  }
}
