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

  it("keeps the ZeroMQ gateway on loopback without a token, and lets it out with one", () => {
    expect(() => parseServeConfig(["--zmq-listen", "0.0.0.0:5557"], {})).toThrow(/ZeroMQ gateway on 0\.0\.0\.0 without a token/);
    expect(parseServeConfig(["--listen", "0.0.0.0:8470", "--zmq-listen", "0.0.0.0:5557", "--token", "t"], {})).toMatchObject({ zmqListen: "0.0.0.0:5557" });
  });

  it("counts client certificates (mTLS) as credentials for the HTTP port, but not for ZeroMQ", () => {
    const tls = ["--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-ca", "ca.pem"];
    expect(parseServeConfig(["--listen", "0.0.0.0:8470", "--no-zmq", ...tls], {})).toMatchObject({ listen: "0.0.0.0:8470", tlsClientCa: expect.stringMatching(/\/ca\.pem$/) });
    expect(() => parseServeConfig(["--listen", "0.0.0.0:8470", "--no-zmq", "--tls-cert", "c.pem", "--tls-key", "k.pem"], {})).toThrow(/without credentials.*--tls-client-ca/);
    expect(() => parseServeConfig(["--listen", "0.0.0.0:8470", "--zmq-listen", "0.0.0.0:5557", ...tls], {})).toThrow(/ZeroMQ gateway/);
  });

  it("refuses incomplete TLS settings, saying which flag is missing", () => {
    expect(() => parseServeConfig(["--tls-cert", "c.pem"], {})).toThrow(/--tls-cert and --tls-key go together/);
    expect(() => parseServeConfig(["--tls-client-ca", "ca.pem"], {})).toThrow(/--tls-client-ca needs --tls-cert/);
  });

  it("puts the ZeroMQ admin socket on 127.0.0.1:5548 unless told otherwise, and keeps it on loopback without a token", () => {
    const config = parseServeConfig([], {});
    expect(config !== "help" && config.adminZmqListen).toBe("127.0.0.1:5548");
    const moved = parseServeConfig(["--admin-zmq-listen", "127.0.0.2:6000"], {});
    expect(moved !== "help" && moved.adminZmqListen).toBe("127.0.0.2:6000");
    const off = parseServeConfig(["--no-admin-zmq"], {});
    expect(off !== "help" && off.adminZmqListen).toBe("");
    expect(() => parseServeConfig(["--admin-zmq-listen", "0.0.0.0:5548"], {})).toThrow(/ZeroMQ admin socket on 0\.0\.0\.0 without a token/);
    expect(parseServeConfig(["--listen", "0.0.0.0:8470", "--admin-zmq-listen", "0.0.0.0:5548", "--token", "t"], {})).toMatchObject({ adminZmqListen: "0.0.0.0:5548" });
    expect(() => parseServeConfig(["--admin-zmq-listen", "5548"], {})).toThrow(/--admin-zmq-listen must be host:port/);
  });

  it("rejects malformed numbers and addresses", () => {
    expect(() => parseServeConfig(["--max-queue", "ten"], {})).toThrow(/non-negative integer/);
    expect(() => parseServeConfig(["--listen", "nowhere"], {})).toThrow(/host:port/);
  });
});

describe("containment and run-as flags", () => {
  it("takes the connection bounds, and refuses a header bound longer than the request bound", () => {
    expect(parseServeConfig([], {})).toMatchObject({ headersTimeoutMs: 30_000, requestTimeoutMs: 300_000, idleTimeoutMs: 65_000, maxConnections: 0 });
    const flags = ["--headers-timeout-ms", "500", "--request-timeout-ms", "1000", "--idle-timeout-ms", "2000", "--max-connections", "100"];
    expect(parseServeConfig(flags, {})).toMatchObject({ headersTimeoutMs: 500, requestTimeoutMs: 1000, idleTimeoutMs: 2000, maxConnections: 100 });
    expect(() => parseServeConfig(["--headers-timeout-ms", "5000", "--request-timeout-ms", "1000"], {})).toThrow(/--headers-timeout-ms \(5000\) cannot exceed --request-timeout-ms \(1000\)/);
    expect(() => parseServeConfig(["--max-connections", "many"], {})).toThrow(/--max-connections must be a non-negative integer/);
  });

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
