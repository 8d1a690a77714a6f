import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, defaultConfig, parseServeConfig, serveUsage, type Config } from "../src/config.js";

const dir = mkdtempSync(join(tmpdir(), "drce-config-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** Writes a config file holding `content` (an object is written as JSON) and returns its path. */
function configFile(content: unknown): string {
  const path = join(dir, `serve-${++files}.json`);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

const parse = (argv: string[], env: NodeJS.ProcessEnv = {}): Config => {
  const config = parseServeConfig(argv, env);
  if (config === "help") throw new Error("unexpected help");
  return config;
};

describe("drce serve --config FILE", () => {
  it("takes every kind of option from the file, keyed by its flag: texts, numbers, durations, switches and lists", () => {
    const path = configFile({
      listen: "127.0.0.1:9001",
      "no-zmq": true,
      "admin-zmq-listen": "127.0.0.2:6000",
      "data-dir": "/srv/drce",
      name: "build-7",
      "max-queue": 500,
      "max-concurrent": "3",
      "retain-finished": "1h30m",
      "allow-dir": ["/srv/a", "/srv/b"],
      "allow-host": ["Build.Example"],
      "no-cgroups": true,
      "notify-no-reports": false,
      "log-level": "debug",
    });
    expect(parse(["--config", path])).toMatchObject({
      listen: "127.0.0.1:9001",
      zmqListen: "",
      adminZmqListen: "127.0.0.2:6000",
      dataDir: "/srv/drce",
      name: "build-7",
      maxQueue: 500,
      maxConcurrent: 3,
      retainFinishedMs: 5_400_000,
      allowedDirs: ["/srv/a", "/srv/b"],
      allowHosts: ["build.example"],
      cgroups: false,
      notifyReports: true,
      logLevel: "debug",
    });
  });

  it("lets flags override the file, and the environment too, while the file overrides the defaults", () => {
    const path = configFile({ listen: "127.0.0.1:9001", "max-queue": 500, "allow-dir": ["/srv/a"], "log-level": "debug", "zmq-listen": "127.0.0.1:6001" });
    const config = parse(["--config", path, "--max-queue", "20", "--allow-dir", "/srv/z", "--no-zmq"], { DRCE_LOG_LEVEL: "warn" });
    expect(config).toMatchObject({ listen: "127.0.0.1:9001", maxQueue: 20, allowedDirs: ["/srv/z"], logLevel: "warn", zmqListen: "" });
    expect(parse(["--config", configFile({})])).toEqual(parse([]));
    expect(parse(["--config", configFile({})]).maxQueue).toBe(defaultConfig().maxQueue);
  });

  it("reads the token from the file's token-file, and a --token flag still wins over it", () => {
    const tokenPath = join(dir, "token");
    writeFileSync(tokenPath, "s3cret\n");
    const path = configFile({ "token-file": tokenPath, listen: "0.0.0.0:8470", "no-zmq": true });
    expect(parse(["--config", path]).token).toBe("s3cret");
    expect(parse(["--config", path, "--token", "flag"]).token).toBe("flag");
  });

  it("refuses an unknown key, naming it", () => {
    const path = configFile({ "max-queu": 5 });
    expect(() => parse(["--config", path])).toThrow(ConfigError);
    expect(() => parse(["--config", path])).toThrow(`"max-queu" in ${path} is not an option of drce serve (keys are its flags without the dashes; drce serve --help lists them)`);
    expect(() => parse(["--config", configFile({ maxQueue: 5 })])).toThrow(/"maxQueue" in .* is not an option of drce serve/);
    expect(() => parse(["--config", configFile({ config: "other.json" })])).toThrow(/"config" in .* is not an option of drce serve/);
  });

  it("refuses a value of the wrong type, naming the key and what it must be", () => {
    const cases: [unknown, RegExp][] = [
      [{ "max-queue": true }, /"max-queue" in .* must be a non-negative integer \(a number or a string\), got true/],
      [{ listen: 8470 }, /"listen" in .* must be a string, got 8470/],
      [{ "no-cgroups": "yes" }, /"no-cgroups" in .* must be true or false, got "yes"/],
      [{ "allow-dir": "/srv" }, /"allow-dir" in .* must be an array of strings, got "\/srv"/],
      [{ "allow-env": ["LD_PRELOAD", 3] }, /"allow-env" in .* must be an array of strings/],
    ];
    for (const [content, message] of cases) {
      const path = configFile(content);
      expect(() => parse(["--config", path]), JSON.stringify(content)).toThrow(ConfigError);
      expect(() => parse(["--config", path]), JSON.stringify(content)).toThrow(message);
    }
  });

  it("refuses a bad value with the option's own sentence, naming the key instead of the flag", () => {
    const cases: [unknown, RegExp][] = [
      [{ "max-queue": -1 }, /^"max-queue" in .* must be a non-negative integer, got "-1"$/],
      [{ "max-queue": 1.5 }, /^"max-queue" in .* must be a non-negative integer, got "1.5"$/],
      [{ "max-queue": "ten" }, /^"max-queue" in .* must be a non-negative integer, got "ten"$/],
      [{ "retain-finished": "7" }, /^"retain-finished" in .* must be a duration such as 7d/],
      [{ "allow-host": ["build.example:80"] }, /^"allow-host" in .* must be a host name or an address without a port/],
      [{ "cors-origin": ["https://app.example.com/path"] }, /^"cors-origin" in .* must be an origin such as/],
    ];
    for (const [content, message] of cases) {
      const path = configFile(content);
      expect(() => parse(["--config", path]), JSON.stringify(content)).toThrow(ConfigError);
      expect(() => parse(["--config", path]), JSON.stringify(content)).toThrow(message);
    }
    // The checks across options hold for the file as for flags.
    expect(() => parse(["--config", configFile({ listen: "0.0.0.0:8470", "no-zmq": true })])).toThrow(/refusing to listen on 0\.0\.0\.0 without credentials/);
    expect(() => parse(["--config", configFile({ "headers-timeout-ms": 5000, "request-timeout-ms": 1000 })])).toThrow(/--headers-timeout-ms \(5000\) cannot exceed --request-timeout-ms \(1000\)/);
  });

  it("refuses a file that cannot be read, is not JSON, or is not an object of options", () => {
    const missing = join(dir, "absent.json");
    expect(() => parse(["--config", missing])).toThrow(ConfigError);
    expect(() => parse(["--config", missing])).toThrow(`cannot read the config file ${missing}: ENOENT`);
    expect(() => parse(["--config", configFile("{ listen: 1 ")])).toThrow(/the config file .* is not valid JSON: /);
    for (const content of ["[]", "null", '"listen"', "3"]) {
      expect(() => parse(["--config", configFile(content)]), content).toThrow(/the config file .* must hold a JSON object of options/);
    }
  });

  it("lists --config in the usage text, and --help still wins over a bad file", () => {
    expect(serveUsage).toMatch(/^ {2}--config FILE {2,}read options from this JSON file/m);
    expect(parseServeConfig(["--config", join(dir, "absent.json"), "--help"], {})).toBe("help");
  });
});
