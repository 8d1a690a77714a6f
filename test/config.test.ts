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

  it("puts the ZeroMQ admin socket on 127.0.0.1:5548 unless told otherwise, and keeps it on loopback", () => {
    const config = parseServeConfig([], {});
    expect(config !== "help" && config.adminZmqListen).toBe("127.0.0.1:5548");
    const moved = parseServeConfig(["--admin-zmq-listen", "127.0.0.2:6000"], {});
    expect(moved !== "help" && moved.adminZmqListen).toBe("127.0.0.2:6000");
    const off = parseServeConfig(["--no-admin-zmq"], {});
    expect(off !== "help" && off.adminZmqListen).toBe("");
    expect(() => parseServeConfig(["--admin-zmq-listen", "0.0.0.0:5548", "--token", "t"], {})).toThrow(/ZeroMQ admin socket/);
    expect(() => parseServeConfig(["--admin-zmq-listen", "5548"], {})).toThrow(/--admin-zmq-listen must be host:port/);
  });

  it("rejects malformed numbers and addresses", () => {
    expect(() => parseServeConfig(["--max-queue", "ten"], {})).toThrow(/non-negative integer/);
    expect(() => parseServeConfig(["--listen", "nowhere"], {})).toThrow(/host:port/);
  });
});
