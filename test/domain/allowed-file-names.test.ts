import { describe, expect, it } from "vitest";
import { allowedRootOf, checkFileName } from "../../src/domain/validate.js";
import { DrceError } from "../../src/domain/errors.js";

describe("absolute file names inside --allow-dir directories", () => {
  const dirs = ["/tmp/drce-allowed", "/srv/data"];

  it("finds the allowed directory an absolute name lies in", () => {
    expect(allowedRootOf("/tmp/drce-allowed/a.txt", dirs)).toBe("/tmp/drce-allowed");
    expect(allowedRootOf("/srv/data/deep/er/b", dirs)).toBe("/srv/data");
    expect(allowedRootOf("/srv/data/./c", dirs)).toBe("/srv/data");
  });

  it.each([
    ["/tmp/drce-allowed", "the directory itself"],
    ["/tmp/drce-allowed-2/a", "a sibling sharing its prefix"],
    ["/tmp/drce-allowed/../etc/passwd", "a .. segment"],
    ["/tmp/drce-allowed/x/../../etc", "a .. segment below it"],
    ["/etc/passwd", "another directory"],
    ["/tmp/drce-allowed/a\0b", "a NUL byte"],
    ["relative/name", "a relative name"],
  ])("finds none for %j (%s)", (name) => {
    expect(allowedRootOf(name, dirs)).toBeUndefined();
  });

  it("accepts such names and refuses the rest with the action's code", () => {
    expect(() => checkFileName("/srv/data/ok", 201, dirs)).not.toThrow();
    expect(() => checkFileName("work/ok", 201, dirs)).not.toThrow();
    for (const [name, code] of [["/srv/other", 202], ["/srv/data/../x", 203], ["/srv/data", 204]] as const) {
      let error: unknown;
      try {
        checkFileName(name, code, dirs);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(DrceError);
      expect((error as DrceError).legacyCode).toBe(code);
    }
    // Without allowed directories every absolute name is refused, as before.
    expect(() => checkFileName("/srv/data/ok", 201)).toThrow(/absolute path/);
  });
});
