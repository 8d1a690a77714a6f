import { describe, expect, it } from "vitest";
import { ConfigError, parseServeConfig, type Config } from "../src/config.js";

const parse = (argv: string[], env: NodeJS.ProcessEnv = {}): Config => {
  const config = parseServeConfig(argv, env);
  if (config === "help") throw new Error("unexpected help");
  return config;
};

describe("drce serve notification flags", () => {
  it("sends nothing unless --notify-url is given", () => {
    const config = parse([]);
    expect(config.notifyUrl).toBe("");
    expect(config.notifyReports).toBe(true);
    expect(config.notifyTimeoutMs).toBe(5000);
    expect(config.notifyRetryMaxMs).toBe(30_000);
  });

  it("reads the URL, the token (flag or DRCE_NOTIFY_TOKEN), the bounds and --notify-no-reports", () => {
    const config = parse(["--notify-url", "https://dtm.example:8443/events", "--notify-timeout-ms", "800", "--notify-retry-max-ms", "2000", "--notify-no-reports"], { DRCE_NOTIFY_TOKEN: "t1" });
    expect(config).toMatchObject({ notifyUrl: "https://dtm.example:8443/events", notifyToken: "t1", notifyTimeoutMs: 800, notifyRetryMaxMs: 2000, notifyReports: false });
    expect(parse(["--notify-url", "http://127.0.0.1:9/x", "--notify-token", "t2"], { DRCE_NOTIFY_TOKEN: "t1" }).notifyToken).toBe("t2");
  });

  it("refuses a notification URL that is not http or https, saying so", () => {
    for (const url of ["ftp://host/x", "not a url", "127.0.0.1:9000"]) {
      expect(() => parse(["--notify-url", url])).toThrow(ConfigError);
      expect(() => parse(["--notify-url", url])).toThrow(/--notify-url must be an http or https URL/);
    }
    expect(() => parse(["--notify-url", "http://h/x", "--notify-timeout-ms", "soon"])).toThrow(/--notify-timeout-ms must be a non-negative integer/);
  });
});
