import { open, type FileHandle } from "node:fs/promises";
import { DrceError, ErrorCode } from "../domain/errors.js";
import type { StreamName } from "../domain/task.js";
import type { KeptOutput } from "../domain/view.js";

/**
 * Opens a kept output file for reading, up to `available` bytes when its task is still
 * writing it. A stream that wrote nothing has no file and reads as empty.
 */
export async function openKept(path: string, stream: StreamName, available: number | undefined): Promise<KeptOutput> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { size: 0, read: () => Promise.resolve(new Uint8Array(0)), close: () => Promise.resolve() };
    throw new DrceError("unavailable", `storage error while reading ${stream}`, { cause: error, legacyCode: ErrorCode.ReadDataFile });
  }
  const fileSize = (await handle.stat()).size;
  const size = available === undefined ? fileSize : Math.min(available, fileSize);
  let closed: Promise<void> | undefined;
  return {
    size,
    async read(position, length) {
      const data = Buffer.allocUnsafe(Math.max(0, Math.min(length, size - position)));
      let filled = 0;
      while (filled < data.length) {
        const { bytesRead } = await handle.read(data, filled, data.length - filled, position + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return data.subarray(0, filled);
    },
    close: () => (closed ??= handle.close()),
  };
}
