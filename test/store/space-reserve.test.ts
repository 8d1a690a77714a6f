import { execFileSync } from "node:child_process";
import { statSync, statfsSync } from "node:fs";
import { mkdtemp, rm, rmdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSpaceReserve, isNoSpace, type SpaceChange } from "../../src/store/space-reserve.js";

/*
 * The storage reserve on a real 1 MiB tmpfs mounted by the test (root only; without the
 * permission to mount, the test fails in CI and is skipped elsewhere).
 */

let mountPoint = "";
let mountError = "";

const free = (): number => {
  const stats = statfsSync(mountPoint);
  return stats.bfree * stats.bsize;
};

/** Fills the file system to its last page with one file. */
async function fill(): Promise<void> {
  try {
    execFileSync("dd", ["if=/dev/zero", `of=${join(mountPoint, "filler")}`, "bs=4k"], { stdio: "ignore" });
  } catch {
    // dd exits 1 at ENOSPC: that is the point.
  }
}

describe("the storage reserve", () => {
  beforeAll(async () => {
    try {
      mountPoint = await mkdtemp(join(tmpdir(), "drce-reserve-"));
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mountPoint], { stdio: "ignore" });
    } catch (error) {
      mountError = `mounting a tmpfs is not permitted here (needs root): ${String(error)}`;
      if (process.env["CI"] === "true") throw new Error(mountError);
      console.warn(`storage reserve test skipped: ${mountError}`);
    }
  });
  afterAll(async () => {
    if (mountPoint !== "" && mountError === "") {
      try {
        execFileSync("umount", [mountPoint], { stdio: "ignore" });
        await rmdir(mountPoint);
      } catch {
        // best effort: an unmount failure must not hide the test's result
      }
    }
  });

  it("holds real blocks, gives them back a piece at a time, and is full only when the disk is", async (context) => {
    if (mountError !== "") return context.skip();
    const changes: SpaceChange[] = [];
    const path = join(mountPoint, "space.reserve");
    const before = free();
    // A thirty-second of 1 MiB: 32 KiB, in pieces of 8 KiB.
    const reserve = createSpaceReserve({ path, onChange: (change) => changes.push(change) });
    try {
      expect(reserve.targetBytes).toBe(32 * 1024);
      expect(reserve.heldBytes).toBe(32 * 1024);
      expect(statSync(path).size).toBe(32 * 1024);
      expect(before - free()).toBe(32 * 1024);
      expect(reserve.full).toBe(false);

      // An oversized write failing with ENOSPC while the disk has room does not make it full.
      reserve.markFull("ENOSPC", "writing an oversized file");
      expect(reserve.full).toBe(false);

      await fill();
      const failed = await writeFile(join(mountPoint, "more"), Buffer.alloc(8192)).then(() => undefined, (error: unknown) => error);
      expect(isNoSpace(failed)).toBe(true);
      reserve.markFull("ENOSPC", "saving a task status");
      expect(reserve.full).toBe(true);
      expect(changes).toEqual([{ full: true, code: "ENOSPC", what: "saving a task status", reserveBytes: 32 * 1024 }]);

      // Each piece given back is room a write can take, and nothing more.
      expect(reserve.giveBack()).toBe(true);
      expect(reserve.heldBytes).toBe(24 * 1024);
      await writeFile(join(mountPoint, "status-1"), Buffer.alloc(8192));
      await expect(writeFile(join(mountPoint, "status-2"), Buffer.alloc(8192))).rejects.toMatchObject({ code: "ENOSPC" });
      for (let i = 0; i < 3; i++) expect(reserve.giveBack()).toBe(true);
      expect(reserve.heldBytes).toBe(0);
      expect(reserve.giveBack()).toBe(false);

      // Still full while the room is missing; refilled and open again once it is back.
      expect(reserve.recheck()).toBe(true);
      await rm(join(mountPoint, "filler"));
      expect(reserve.recheck()).toBe(false);
      expect(reserve.full).toBe(false);
      expect(reserve.heldBytes).toBe(32 * 1024);
      expect(statSync(path).size).toBe(32 * 1024);
      expect(changes.at(-1)).toEqual({ full: false, reserveBytes: 32 * 1024 });
    } finally {
      reserve.close();
    }
  });

  it("starts full on a full disk, keeping what it could take, and takes over its file after a restart", async (context) => {
    if (mountError !== "") return context.skip();
    for (const name of ["filler", "status-1", "space.reserve"]) await rm(join(mountPoint, name), { force: true });
    const path = join(mountPoint, "space.reserve");
    const first = createSpaceReserve({ path, bytes: 64 * 1024 });
    first.close();
    expect(first.heldBytes).toBe(64 * 1024);
    await fill();
    // Half of it was given back and used before the node stopped.
    const crashed = createSpaceReserve({ path, bytes: 64 * 1024 });
    crashed.giveBack();
    crashed.giveBack();
    crashed.close();
    await writeFile(join(mountPoint, "used"), Buffer.alloc(32 * 1024));
    const changes: SpaceChange[] = [];
    const restarted = createSpaceReserve({ path, bytes: 64 * 1024, onChange: (change) => changes.push(change) });
    try {
      expect(restarted.full).toBe(true);
      expect(restarted.heldBytes).toBe(32 * 1024);
      expect(changes).toEqual([{ full: true, code: "ENOSPC", what: "making the storage reserve", reserveBytes: 32 * 1024 }]);
    } finally {
      restarted.close();
      for (const name of ["filler", "used", "space.reserve"]) await rm(join(mountPoint, name), { force: true });
    }
  });
});
