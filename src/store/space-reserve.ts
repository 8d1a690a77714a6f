import { randomBytes } from "node:crypto";
import { closeSync, ftruncateSync, openSync, statfsSync, statSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/** Options of {@link createSpaceReserve}. */
export interface SpaceReserveOptions {
  /** The reserve file, on the file system it keeps room on (the data directory's). */
  readonly path: string;
  /**
   * Bytes to hold. Default: 4 MiB, or a thirty-second of the file system when that is
   * less (64 KiB on a 2 MiB file system), and never below one page.
   */
  readonly bytes?: number | undefined;
  /** Told when the disk turns full and when it has room again (for the node's log). */
  readonly onChange?: ((change: SpaceChange) => void) | undefined;
}

/** A change of the disk's state, as the reserve saw it. */
export type SpaceChange =
  | { readonly full: true; readonly code: string; readonly what: string; readonly reserveBytes: number }
  | { readonly full: false; readonly reserveBytes: number };

/**
 * What an output spool needs of the reserve: whether the disk is full (then it stores no
 * more, so that room given back goes to final statuses), and a way to say it found it full.
 */
export interface SpaceGuard {
  /** True while the disk is full: new tasks are refused and output is no longer stored. */
  readonly full: boolean;
  /** Reports a write that failed for lack of space; see {@link SpaceReserve.markFull}. */
  markFull(code: string, what: string): void;
}

/**
 * Room kept on the data directory's file system for the writes that must not fail when
 * it fills up: a task's final status, a shutdown's, a recovery's. The room is a file of
 * real blocks (written, not sparse), given back a piece at a time to a status write that
 * failed for lack of space, then retried; see {@link createSpaceReserve}.
 */
export interface SpaceReserve extends SpaceGuard {
  /** Bytes held now. */
  readonly heldBytes: number;
  /** Bytes the reserve holds when whole. */
  readonly targetBytes: number;
  /**
   * Marks the disk full after a write failed with ENOSPC or EDQUOT (`what` names the write,
   * for the log), unless the file system still has a reserve's worth free (one oversized
   * write failed, the disk is not full). While full, the node checks for room every second.
   */
  markFull(code: string, what: string): void;
  /** Gives back one piece of the reserve; false when nothing was left to give. */
  giveBack(): boolean;
  /**
   * While the disk is full: when the file system has room again (as much as the reserve
   * lacks, and a whole reserve besides), refills the reserve and ends the full state.
   * Returns whether the disk is still full.
   */
  recheck(): boolean;
  /** Stops the periodic check of a full disk. */
  close(): void;
}

/** Tells whether a storage error means the file system (or the user's quota) is out of room. */
export function isNoSpace(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

const defaultMaxBytes = 4 * 1024 * 1024;
const pageBytes = 4096;

/** Free bytes this process can write (root may use the blocks kept for it), and the file system's size. */
function space(path: string): { free: number; size: number } {
  const stats = statfsSync(path);
  const blocks = process.geteuid?.() === 0 ? stats.bfree : stats.bavail;
  return { free: blocks * stats.bsize, size: stats.blocks * stats.bsize };
}

/**
 * Creates (or takes over, after a restart) the reserve file and fills it to its size. A
 * file system that has not the room for it starts full: the node then serves what it has
 * and refuses new tasks until space is freed. The file is written with random bytes, so a
 * compressing file system cannot store it in less room than it is meant to keep. Every
 * call is synchronous: the reserve is used on the error path of a write, and each call is
 * a few system calls on a file the page cache holds.
 */
export function createSpaceReserve(options: SpaceReserveOptions): SpaceReserve {
  const dir = dirname(options.path);
  const targetBytes = Math.max(pageBytes, Math.floor(options.bytes ?? Math.min(defaultMaxBytes, space(dir).size / 32)));
  // Pieces of a quarter of the reserve (at most 64 KiB): each holds a few dozen status
  // writes, and a command writing into its work directory meanwhile can take one piece,
  // never the whole reserve.
  const pieceBytes = Math.max(pageBytes, Math.min(64 * 1024, Math.floor(targetBytes / 4 / pageBytes) * pageBytes));
  let held = 0;
  try {
    held = Math.min(statSync(options.path).size, targetBytes);
  } catch {
    held = 0;
  }
  let full = false;
  let timer: NodeJS.Timeout | undefined;

  /** Writes the reserve up to its size; stops at the first failure, keeping what it got. */
  const fill = (): boolean => {
    let fd: number;
    try {
      fd = openSync(options.path, held === 0 ? "w" : "r+", 0o600);
    } catch {
      return false;
    }
    try {
      const piece = randomBytes(pieceBytes);
      while (held < targetBytes) {
        const length = Math.min(pieceBytes, targetBytes - held);
        held += writeSync(fd, piece, 0, length, held);
      }
      return true;
    } catch {
      // What did not fit is cut off: the reserve is what was written whole.
      try {
        ftruncateSync(fd, held);
      } catch {
        // The file keeps a partial piece past `held`; it is room kept all the same.
      }
      return false;
    } finally {
      closeSync(fd);
    }
  };

  const enter = (code: string, what: string): void => {
    if (full) return;
    full = true;
    options.onChange?.({ full: true, code, what, reserveBytes: held });
    timer = setInterval(() => reserve.recheck(), 1000);
    timer.unref();
  };

  const reserve: SpaceReserve = {
    get full() {
      return full;
    },
    get heldBytes() {
      return held;
    },
    targetBytes,
    markFull(code, what) {
      if (full) return;
      let free = 0;
      try {
        free = space(dir).free;
      } catch {
        free = 0; // a file system that cannot be asked is treated as full
      }
      if (free < targetBytes) enter(code, what);
    },
    giveBack() {
      if (held === 0) return false;
      const next = Math.max(0, held - pieceBytes);
      try {
        const fd = openSync(options.path, "r+");
        try {
          ftruncateSync(fd, next);
        } finally {
          closeSync(fd);
        }
      } catch {
        return false;
      }
      held = next;
      return true;
    },
    recheck() {
      if (!full) return false;
      let free = 0;
      try {
        free = space(dir).free;
      } catch {
        return true;
      }
      if (free < targetBytes - held + targetBytes || !fill()) return true;
      full = false;
      clearInterval(timer);
      timer = undefined;
      options.onChange?.({ full: false, reserveBytes: held });
      return false;
    },
    close() {
      clearInterval(timer);
      timer = undefined;
    },
  };
  if (!fill()) enter("ENOSPC", "making the storage reserve");
  return reserve;
}

/** A store without a reserve: the disk is never marked full, and nothing is given back. */
export const noSpaceReserve: SpaceReserve = {
  full: false,
  heldBytes: 0,
  targetBytes: 0,
  markFull: () => undefined,
  giveBack: () => false,
  recheck: () => false,
  close: () => undefined,
};
