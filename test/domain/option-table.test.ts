import { describe, expect, it } from "vitest";
import { defaultConfig, parseServeConfig, serveUsage } from "../../src/config.js";
import { duration, formatOptionHelp, integer, namingSource, OptionError, switchOption, valueOption } from "../../src/domain/option-table.js";
import { serveOptions } from "../../src/serve-options.js";

/** A value each kind of option takes, so that every flag can be given once. */
function sampleArgs(): string[] {
  const args: string[] = [];
  for (const spec of Object.values(serveOptions)) {
    if (spec.off !== undefined) args.push(`--${spec.off.flag}`);
    if (spec.arg === undefined) args.push(`--${spec.flag}`);
    else if (spec.flag === "retain-finished") args.push(`--${spec.flag}`, "1h");
    else if (spec.flag.endsWith("listen")) args.push(`--${spec.flag}`, "127.0.0.1:0");
    else if (spec.arg === "N" || spec.arg === "MS") args.push(`--${spec.flag}`, "60000");
    else if (spec.flag === "cors-origin") args.push(`--${spec.flag}`, "https://app.example.com");
    else if (spec.flag === "notify-url") args.push(`--${spec.flag}`, "http://127.0.0.1:9/events");
    else if (spec.flag === "run-as" || spec.flag.startsWith("tls-")) continue; // need a real user or PEM files
    else if (spec.flag === "node") continue; // lists a manager's nodes, and a manager refuses --join
    else if (spec.flag === "role") args.push(`--${spec.flag}`, "data");
    else if (spec.flag === "join" || spec.flag === "advertise-url") args.push(`--${spec.flag}`, "http://127.0.0.1:9");
    else if (spec.flag === "label") args.push(`--${spec.flag}`, "env=test");
    else if (spec.flag === "mode") args.push(`--${spec.flag}`, "all");
    else if (spec.flag === "weights") args.push(`--${spec.flag}`, "loadavg=1");
    else args.push(`--${spec.flag}`, "x");
  }
  return args;
}

describe("the option table of drce serve", () => {
  it("gives the Config its fields, and the defaults one per option", () => {
    expect(Object.keys(defaultConfig()).sort()).toEqual(Object.keys(serveOptions).sort());
  });

  it("lists every flag the parser takes in --help, in the table's order, and each only once", () => {
    const listed = [...serveUsage.matchAll(/^ {2}--([a-z-]+)/gm)].map((match) => match[1]);
    expect(listed).toEqual(["config", ...Object.values(serveOptions).map((spec) => spec.flag)]);
    for (const spec of Object.values(serveOptions)) {
      if (spec.off !== undefined) expect(serveUsage).toContain(`--${spec.off.flag} disables`);
      if (spec.fromFile !== undefined) expect(serveUsage).toContain(`--${spec.fromFile.flag} ${spec.fromFile.arg}`);
      if (spec.env !== undefined) expect(serveUsage).toContain(`env ${spec.env}`);
    }
  });

  it("lets the parser take every flag it lists", () => {
    const config = parseServeConfig(sampleArgs(), {});
    expect(config).toMatchObject({ maxQueue: 60_000, retainFinishedMs: 3_600_000, zmqListen: "", adminZmqListen: "", cgroups: false, notifyReports: false, allowRootTasks: true });
  });

  it("reads the environment variable an option names, below its flag", () => {
    expect(parseServeConfig([], { DRCE_LISTEN: "127.0.0.1:9100", DRCE_LOG_LEVEL: "warn" })).toMatchObject({ listen: "127.0.0.1:9100", logLevel: "warn" });
    expect(parseServeConfig(["--listen", "127.0.0.1:9200"], { DRCE_LISTEN: "127.0.0.1:9100" })).toMatchObject({ listen: "127.0.0.1:9200" });
  });
});

describe("option parsers", () => {
  it("refuse what is not a non-negative integer, and raise a value below the floor to it", () => {
    expect(integer()("0", "--n")).toBe(0);
    expect(integer(1)("0", "--n")).toBe(1);
    expect(() => integer()("-1", "--n")).toThrow(OptionError);
    expect(() => integer()("1e3", "--n")).toThrow('--n must be a non-negative integer, got "1e3"');
    expect(duration("90s", "--d")).toBe(90_000);
    expect(() => duration("90", "--d")).toThrow(/^--d must be a duration such as 7d/);
  });

  it("name where a value came from in the errors of parsers that name their own flag", () => {
    const parse = namingSource("allow-host", (raw: string) => {
      throw new Error(`--allow-host must be a host name, got ${JSON.stringify(raw)}`);
    });
    expect(() => parse("a:1", '"allow-host" in f.json')).toThrow('"allow-host" in f.json must be a host name, got "a:1"');
    const other = namingSource("x", () => {
      throw new Error("no such thing");
    });
    expect(() => other("v", "--x")).toThrow("--x: no such thing");
  });

  it("write one help line per option with its placeholder, default and environment variable", () => {
    const table = {
      port: valueOption({ flag: "port", arg: "N", env: "X_PORT", default: () => 1, defaultHelp: "1", parse: integer(), help: "the port" }),
      quiet: switchOption({ flag: "quiet", value: true, fallback: false, help: "say less" }),
    };
    expect(formatOptionHelp(table)).toEqual(["  --port N                    the port (default 1; env X_PORT)", "  --quiet                     say less"]);
    expect(() => table.quiet.parse("yes", "--quiet")).toThrow("--quiet takes no value");
  });
});
