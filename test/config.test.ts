import { describe, expect, it } from "vitest";
import { ConfigError, parseServeConfig } from "../src/config.js";

describe("drce serve configuration", () => {
  it("starts from the embedded defaults: loopback, ./.drce", () => {
    const config = parseServeConfig([], {});
    expect(config).not.toBe("help");
    if (config === "help") return;
    expect(config.listen).toBe("127.0.0.1:8470");
    expect(config.zmqListen).toBe("127.0.0.1:5557");
    expect(config.dataDir.endsWith("/.drce")).toBe(true);
  });

  it("refuses to listen beyond loopback without a token, and says why", () => {
    expect(() => parseServeConfig(["--listen", "0.0.0.0:8470", "--no-zmq"], {})).toThrow(ConfigError);
    expect(() => parseServeConfig(["--listen", "0.0.0.0:8470", "--no-zmq"], {})).toThrow(/set --token/);
    expect(parseServeConfig(["--listen", "0.0.0.0:8470", "--no-zmq"], { DRCE_TOKEN: "secret" })).not.toBe("help");
  });

  it("keeps the unauthenticated ZeroMQ gateway on loopback, even with a token", () => {
    expect(() => parseServeConfig(["--zmq-listen", "0.0.0.0:5557", "--token", "t"], {})).toThrow(/ZeroMQ gateway/);
  });

  it("rejects malformed numbers and addresses", () => {
    expect(() => parseServeConfig(["--max-queue", "ten"], {})).toThrow(/non-negative integer/);
    expect(() => parseServeConfig(["--listen", "nowhere"], {})).toThrow(/host:port/);
  });
});

describe("containment and run-as flags", () => {
  it("contains tasks in cgroups unless --no-cgroups is given", () => {
    expect(parseServeConfig([], {})).toMatchObject({ cgroups: true, runAs: "", allowRootTasks: false });
    expect(parseServeConfig(["--no-cgroups", "--allow-root-tasks"], {})).toMatchObject({ cgroups: false, allowRootTasks: true });
  });

  it("takes --run-as as a user name or uid, and refuses a user the host does not have", () => {
    if (process.geteuid?.() === 0) {
      expect(parseServeConfig(["--run-as", "nobody"], {})).toMatchObject({ runAs: "nobody" });
      expect(parseServeConfig(["--run-as", "65534"], {})).toMatchObject({ runAs: "65534" });
    }
    expect(() => parseServeConfig(["--run-as", "no-such-user-drce"], {})).toThrow(ConfigError);
    expect(() => parseServeConfig(["--run-as", "no-such-user-drce"], {})).toThrow(/no user "no-such-user-drce"/);
  });
});
