import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync, lstatSync } from "node:fs";
import { realpath } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskSpecSchema } from "../../gen/drce/v1/task_pb.js";
import { DrceError, ErrorCode } from "../../src/domain/errors.js";
import { fileActionCode } from "../../src/domain/validate.js";
import { isInside, localFiles } from "../../src/executor/local-files.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * File names of `files` stay inside the work dir: random names made of `..`, `.`, empty and
 * NUL segments, absolute prefixes and symlinks that point out (or in), against a real work
 * dir on disk. Every accepted name resolves (realpath) inside the root and nothing outside
 * changes; every refusal carries its action's code (201 create, 202 delete before, 203 read,
 * 204 delete after).
 */

const params = { seed: 42, numRuns: 500 } as const;

let base: string;
let root: string;
let outside: string;

/** Rebuilds the work dir (files, a directory, symlinks pointing out and in) and the outside. */
function buildRoot(): void {
  rmSync(root, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
  mkdirSync(outside);
  writeFileSync(join(outside, "secret.txt"), "SECRET");
  mkdirSync(join(root, "a"), { recursive: true });
  writeFileSync(join(root, "a", "f.txt"), "inside-a");
  writeFileSync(join(root, "b.txt"), "inside-b");
  symlinkSync(outside, join(root, "link-out"));
  symlinkSync("../outside", join(root, "link-rel-out"));
  symlinkSync(join(outside, "secret.txt"), join(root, "flink-out"));
  symlinkSync("a", join(root, "link-in"));
  symlinkSync("b.txt", join(root, "flink-in"));
  symlinkSync("a/link-up", join(root, "chain"));
  symlinkSync("../../outside", join(root, "a", "link-up"));
}

/** A digest of everything outside the work dir that a file action could reach. */
function outsideDigest(): string {
  const hash = createHash("sha256");
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const info = lstatSync(path);
      hash.update(`${path}:${info.mode}:${info.size}\n`);
      if (info.isDirectory()) walk(path);
      else if (info.isFile()) hash.update(readFileSync(path));
    }
  };
  walk(outside);
  return hash.digest("hex");
}

const segment = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("a", "b.txt", "f.txt", "new", "secret.txt", "link-out", "link-rel-out", "flink-out", "link-in", "flink-in", "chain") },
  { weight: 3, arbitrary: fc.constantFrom("..", ".", "", "a\0b", "\0") },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 6 }).filter((s) => !s.includes("/")) },
);
const fileName = fc
  .tuple(fc.constantFrom("", "", "", "/", "OUTSIDE/"), fc.array(segment, { minLength: 1, maxLength: 4 }))
  .map(([prefix, parts]) => (prefix === "OUTSIDE/" ? `${outside}/` : prefix) + parts.join("/"));

type Op = "write" | "remove" | "read";
const codes: Record<Op, number> = { write: ErrorCode.FileCreate, remove: ErrorCode.FileDeleteBefore, read: ErrorCode.FileRead };

beforeAll(() => {
  base = realpathSync(mkdtempSync(join(tmpdir(), "drce-confine-")));
  root = join(base, "work");
  outside = join(base, "outside");
  buildRoot();
});

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

describe("file-name confinement (properties, on a real work dir)", () => {
  it("every accepted name resolves inside the root, every refusal has its action's code, and nothing outside changes", async () => {
    const untouched = outsideDigest();
    await fc.assert(
      fc.asyncProperty(fileName, fc.constantFrom<Op>("write", "remove", "read"), async (name, op) => {
        buildRoot();
        let outcome: { ok: true; data?: Uint8Array } | { ok: false; error: unknown };
        try {
          if (op === "write") await localFiles.write(root, name, Buffer.from("written"));
          else if (op === "remove") await localFiles.remove(root, name);
          const data = op === "read" ? await localFiles.read(root, name, 1024) : undefined;
          outcome = data === undefined ? { ok: true } : { ok: true, data };
        } catch (error) {
          outcome = { ok: false, error };
        }
        if (outcome.ok) {
          // Accepted: the name is relative and clean, and the file it names is inside the root.
          expect(name.startsWith("/")).toBe(false);
          expect(name.includes("\0")).toBe(false);
          expect(name.split("/")).not.toContain("..");
          if (op !== "remove") expect(isInside(root, await realpath(join(root, name)))).toBe(true);
          if (op === "read") expect(Buffer.from(outcome.data!).toString()).not.toBe("SECRET");
        } else {
          expect(outcome.error).toBeInstanceOf(DrceError);
          expect((outcome.error as DrceError).legacyCode).toBe(codes[op]);
        }
        expect(outsideDigest()).toBe(untouched);
      }),
      params,
    );
  });

  // Regression (found by the property above): parents were made with mkdir -p before the
  // check, so "link-out/new/file" created outside/new before the name was refused.
  it("creates no directory outside through a symlinked parent", async () => {
    buildRoot();
    await expect(localFiles.write(root, "link-out/new/deeper/file", Buffer.from("x"))).rejects.toMatchObject({ legacyCode: ErrorCode.FileCreate });
    await expect(localFiles.write(root, "chain/new/file", Buffer.from("x"))).rejects.toMatchObject({ legacyCode: ErrorCode.FileCreate });
    expect(readdirSync(outside)).toEqual(["secret.txt"]);
    // Parents inside, even through a symlink that stays inside, are still made.
    await localFiles.write(root, "link-in/made/here.txt", Buffer.from("ok"));
    expect(readFileSync(join(root, "a", "made", "here.txt"), "utf8")).toBe("ok");
  });

  it("refuses `..`, absolute and NUL names whatever is on disk", async () => {
    const bad = fc.oneof(
      fileName.filter((name) => name.split("/").includes("..")),
      fileName.map((name) => `/${name}`),
      fc.tuple(fileName, fc.nat({ max: 8 })).map(([name, at]) => `${name.slice(0, at)}\0${name.slice(at)}`),
    );
    await fc.assert(
      fc.asyncProperty(bad, fc.constantFrom<Op>("write", "remove", "read"), async (name, op) => {
        buildRoot();
        const call = op === "write" ? localFiles.write(root, name, Buffer.from("x")) : op === "remove" ? localFiles.remove(root, name) : localFiles.read(root, name, 1024);
        await expect(call).rejects.toMatchObject({ kind: "invalid", legacyCode: codes[op] });
      }),
      params,
    );
  });
});

describe("file-name confinement through a node (property)", () => {
  let node: TestNode;

  beforeAll(async () => {
    node = await startNode();
  });

  afterAll(async () => {
    await node?.stop();
  });

  it("refuses an escaping name at submission with InvalidArgument and the code of the action's first step", async () => {
    const escaping = fc.oneof(
      fc.constantFrom("..", "../x", "a/../../x", "/etc/passwd", "x\0y", ".", "./"),
      fileName.filter((name) => name.startsWith("/") || name.includes("\0") || name.split("/").includes("..")),
    );
    const action = fc.integer({ min: 0, max: 15 }).map((bits) => (bits === 0 ? 1 : bits));
    await fc.assert(
      fc.asyncProperty(escaping, action, async (name, bits) => {
        let error: ConnectError | undefined;
        try {
          await node.client.submitTask({ task: create(TaskSpecSchema, { command: "echo ran", files: [{ name, data: Buffer.from("x"), action: bits }] }) });
        } catch (e) {
          error = ConnectError.from(e);
        }
        expect(error?.code).toBe(Code.InvalidArgument);
        expect(Number(error?.metadata.get("drce-error-code"))).toBe(fileActionCode(bits));
      }),
      { seed: 42, numRuns: 200 },
    );
    expect(fileActionCode(2 | 1)).toBe(ErrorCode.FileDeleteBefore);
    expect(fileActionCode(4 | 8)).toBe(ErrorCode.FileRead);
    expect(fileActionCode(8)).toBe(ErrorCode.FileDeleteAfter);
    expect(node.app.core.list()).toEqual([]);
  });
});
