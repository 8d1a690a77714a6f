import { DrceError } from "../domain/errors.js";
import { isNoSpace, type SpaceReserve } from "./space-reserve.js";

/**
 * Runs one store operation and turns its failure into a DrceError ("unavailable") naming
 * `what` and the system's error code. A lack of space marks the disk full; with `reserve`
 * (status writes) the operation is retried with a piece of the reserve's room each time.
 */
export type StorageGuard = <T>(what: string, action: () => Promise<T>, reserve?: boolean) => Promise<T>;

/** Makes the guard of a store whose disk keeps `space`. */
export function createStorageGuard(space: SpaceReserve): StorageGuard {
  return async <T>(what: string, action: () => Promise<T>, reserve = false): Promise<T> => {
    for (;;) {
      try {
        return await action();
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? "EIO";
        if (isNoSpace(error)) {
          space.markFull(code, what);
          // A status write gets the reserve's room, a piece at a time; nothing else does.
          if (reserve && space.giveBack()) continue;
        }
        throw new DrceError("unavailable", `storage error while ${what} (${code})`, { cause: error });
      }
    }
  };
}
