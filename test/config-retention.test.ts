import { describe, expect, it } from "vitest";
import { ConfigError, parseServeConfig, type Config } from "../src/config.js";
import { formatDuration, parseDuration } from "../src/domain/duration.js";

const parse = (argv: string[]): Config => {
  const config = parseServeConfig(argv, {});
  if (config === "help") throw new Error("unexpected help");
  return config;
};

describe("drce serve retention flags", () => {
  it("keeps finished tasks 7 days and at most 100000 tasks unless told otherwise", () => {
    expect(parse([])).toMatchObject({ retainFinishedMs: 7 * 86_400_000, retainMaxTasks: 100_000 });
  });

  it("reads --retain-finished as a duration and --retain-max-tasks as a count; 0 lifts either bound", () => {
    expect(parse(["--retain-finished", "1h30m", "--retain-max-tasks", "50"])).toMatchObject({ retainFinishedMs: 5_400_000, retainMaxTasks: 50 });
    expect(parse(["--retain-finished", "0", "--retain-max-tasks", "0"])).toMatchObject({ retainFinishedMs: 0, retainMaxTasks: 0 });
    expect(parse(["--retain-finished", "250ms"]).retainFinishedMs).toBe(250);
  });

  it("refuses a duration without a unit, or a count that is not one, saying what it expects", () => {
    for (const value of ["7", "1w", "-1h", "1.5h", "h", ""]) {
      expect(() => parse([`--retain-finished=${value}`]), value).toThrow(ConfigError);
      expect(() => parse([`--retain-finished=${value}`]), value).toThrow(/--retain-finished must be a duration such as 7d/);
    }
    expect(() => parse(["--retain-max-tasks", "many"])).toThrow(/--retain-max-tasks must be a non-negative integer/);
  });
});

describe("durations", () => {
  it("read and write the units an operator types", () => {
    expect(parseDuration("7d")).toBe(604_800_000);
    expect(parseDuration("90s")).toBe(90_000);
    expect(parseDuration("2h5m")).toBe(7_500_000);
    expect(parseDuration("0")).toBe(0);
    expect(parseDuration("0s")).toBe(0);
    expect(parseDuration("10")).toBeUndefined();
    expect(parseDuration("99999999999999999d")).toBeUndefined();
    expect(formatDuration(604_800_000)).toBe("7d");
    expect(formatDuration(90_000)).toBe("90s");
    expect(formatDuration(1500)).toBe("1500ms");
  });
});
