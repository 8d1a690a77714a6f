import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { connectTimeoutMs, tokenFromOptions } from "../../src/cli/common.js";
import { UsageError } from "../../src/cli/errors.js";
import { makeTestPki, type TestPki } from "../security/certs.js";
import { startDrce, type CliResult } from "../helpers/cli.js";
import { startNode, type TestNode } from "../helpers/node.js";

/*
 * The CLI fails fast and says why: against a server that never answers, servers that are not
 * drce, TLS mismatches and a node that wants a token, `drce` exits 125 (2 for a URL it can
 * tell is wrong) with one plain sentence, never a stack trace; `drce serve` names the port
 * that is taken. Every server here is a real one on 127.0.0.1.
 */

// Each test starts a few `drce` processes; on a loaded 2-core host one start takes seconds.
vi.setConfig({ testTimeout: 120_000 });

type Outcome = CliResult;

/**
 * Runs `drce ARGS` to its end with none of the caller's server, token or certificate
 * variables (unless `env` sets them), killed if it outlives its test.
 */
function drce(args: readonly string[], env: Record<string, string> = {}): Promise<Outcome> {
  const unset = { DRCE_SERVER: undefined, DRCE_CACERT: undefined, DRCE_CERT: undefined, DRCE_CERT_KEY: undefined };
  return startDrce(args, { env: { ...unset, ...env }, timeoutMs: 110_000 }).done;
}

/** One line on stderr, starting "drce: ", without a stack trace or an OpenSSL code. */
function expectOnePlainLine(outcome: Outcome): void {
  expect(outcome.stderr.trimEnd().split("\n"), outcome.stderr).toHaveLength(1);
  expect(outcome.stderr).toMatch(/^drce: /);
  expect(outcome.stderr).not.toMatch(/\n\s+at |node:events|Error \[|ssl3_|0A0001|routines:/);
}

async function listenOn<S extends net.Server>(server: S): Promise<{ server: S; url: string; port: number }> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return { server, url: `http://127.0.0.1:${port}`, port };
}

const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

function keep<S extends net.Server>(listening: { server: S; url: string; port: number }): { server: S; url: string; port: number } {
  const sockets = new Set<net.Socket>();
  listening.server.on("connection", (socket: net.Socket) => sockets.add(socket));
  closers.push(() => new Promise((resolve) => {
    for (const socket of sockets) socket.destroy();
    listening.server.close(resolve);
  }));
  return listening;
}

describe("a server that never answers", () => {
  let silent: { url: string };
  beforeAll(async () => {
    // Accepts the connection and never sends a byte, as a hung process or a wrong port can.
    silent = keep(await listenOn(net.createServer(() => undefined)));
  });

  for (const command of [["ls"], ["node", "info"], ["run", "--", "true"], ["logs", "some-task"]]) {
    it(`makes drce ${command.join(" ")} exit 125 with "no answer from URL within N s", at the timeout`, async () => {
      const started = Date.now();
      const [name, ...rest] = command;
      const outcome = await drce([name!, "--server", silent.url, "--connect-timeout", "0.5", ...rest]);
      expect(outcome.code).toBe(125);
      expect(outcome.stderr).toBe(`drce: unavailable: no answer from ${silent.url} within 0.5 s\n`);
      // Bounded, not measured: without the timeout the command waits for ever.
      expect(Date.now() - started).toBeLessThan(30_000);
    });
  }

  it("takes --connect-timeout before the command too, and refuses one that is not a number of seconds", async () => {
    const outcome = await drce(["--connect-timeout", "0.3", "--server", silent.url, "ls"]);
    expect(outcome).toMatchObject({ code: 125, stderr: `drce: unavailable: no answer from ${silent.url} within 0.3 s\n` });
    const bad = await drce(["ls", "--server", silent.url, "--connect-timeout", "soon"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--connect-timeout must be a number of seconds, got "soon"/);
  });

  it("waits 10 s by default; 0 waits for ever", () => {
    expect(connectTimeoutMs(undefined)).toBe(10_000);
    expect(connectTimeoutMs("0")).toBe(0);
    expect(connectTimeoutMs("2.5")).toBe(2500);
    expect(() => connectTimeoutMs("-1")).toThrow(UsageError);
  });
});

describe("a node that answers", () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode();
  });
  afterAll(async () => {
    await node.stop();
  });

  it("is not cut by the connect timeout while a call rightly waits for its first output", async () => {
    const outcome = await drce(["run", "--server", node.url, "--connect-timeout", "2", "--", "sh", "-c", "sleep 5; echo late"]);
    expect(outcome).toMatchObject({ code: 0, stdout: "late\n", stderr: "" });
  }, 60_000);

  it("refuses a URL with a path as a usage error, naming the URL to use", async () => {
    const outcome = await drce(["ls", "--server", `${node.url}/drce`]);
    expect(outcome.code).toBe(2);
    expect(outcome.stderr).toContain(`a node's URL has no path, the API is at its root (use ${node.url})`);
  });

  it("explains https:// against a cleartext node", async () => {
    const outcome = await drce(["ls", "--server", node.url.replace("http:", "https:")]);
    expect(outcome.code).toBe(125);
    expectOnePlainLine(outcome);
    expect(outcome.stderr).toContain(`answered in cleartext, not TLS: it serves http:// (use ${node.url})`);
  });

  it("explains a refused connection", async () => {
    const closed = await listenOn(net.createServer());
    await new Promise((resolve) => closed.server.close(resolve));
    const outcome = await drce(["ls", "--server", closed.url]);
    expect(outcome.code).toBe(125);
    expectOnePlainLine(outcome);
    expect(outcome.stderr).toBe(`drce: unavailable: nothing listens at ${closed.url} (connection refused): is a node running there? (drce serve starts one)\n`);
  });
});

describe("a server that is not drce", () => {
  it("an HTTP/1 web server: exit 125, one sentence, no stack trace", async () => {
    const web = keep(await listenOn(http.createServer((_req, res) => res.end("<html>hello</html>"))));
    for (const command of [["ls"], ["run", "--", "true"], ["node", "info"]]) {
      const [name, ...rest] = command;
      const outcome = await drce([name!, "--server", web.url, ...rest]);
      expect(outcome.code, command.join(" ")).toBe(125);
      expectOnePlainLine(outcome);
      expect(outcome.stderr).toContain(`${web.url} answered, but not as a drce node: it does not speak HTTP/2`);
    }
  });

  it("python3 -m http.server, where python3 is installed", async () => {
    if (spawnSync("python3", ["--version"]).status !== 0) return;
    const python = spawn("python3", ["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"], { stdio: ["ignore", "pipe", "ignore"] });
    closers.push(async () => {
      python.kill();
    });
    const port = await new Promise<number>((resolve, reject) => {
      let text = "";
      python.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        text += chunk;
        const match = /port (\d+)/.exec(text);
        if (match !== null) resolve(Number(match[1]));
      });
      python.on("exit", () => reject(new Error(`python3 -m http.server exited: ${text}`)));
    });
    const outcome = await drce(["ls", "--server", `http://127.0.0.1:${port}`]);
    expect(outcome.code).toBe(125);
    expectOnePlainLine(outcome);
    expect(outcome.stderr).toContain("answered, but not as a drce node: it does not speak HTTP/2");
  });

  it("an HTTP/2 server without the drce API", async () => {
    const h2 = keep(await listenOn(http2.createServer((_req, res) => {
      res.statusCode = 404;
      res.end("not here");
    })));
    const outcome = await drce(["ls", "--server", h2.url]);
    expect(outcome.code).toBe(125);
    expectOnePlainLine(outcome);
    expect(outcome.stderr).toContain(`${h2.url} answered, but it is not a drce node`);
  });
});

describe("TLS mismatches, in words", () => {
  let pki: TestPki;
  let mtls: TestNode;
  beforeAll(async () => {
    pki = makeTestPki();
    mtls = await startNode({ tlsCert: pki.serverCert, tlsKey: pki.serverKey, tlsClientCa: pki.ca });
  });
  afterAll(async () => {
    await mtls.stop();
    await rm(pki.dir, { recursive: true, force: true });
  });

  it("a node that requires a client certificate", async () => {
    const outcome = await drce(["ls", "--server", mtls.url, "--cacert", pki.ca]);
    expect(outcome.code).toBe(125);
    expectOnePlainLine(outcome);
    expect(outcome.stderr).toContain(`the node at ${mtls.url} requires a client certificate: pass --cert FILE --cert-key FILE`);
  });

  it("a client certificate of another CA", async () => {
    const outcome = await drce(["ls", "--server", mtls.url, "--cacert", pki.ca, "--cert", pki.strangerCert, "--cert-key", pki.strangerKey]);
    expect(outcome.code).toBe(125);
    expectOnePlainLine(outcome);
    // TLS 1.3 sends the alert after the client's handshake is done; Node.js then reports
    // only a closed stream, so the CLI names the likely cause.
    expect(outcome.stderr).toMatch(/refused the client certificate: it is not signed by the CA the node trusts|may refuse the client certificate given \(--cert, signed by a CA it does not trust\)/);
  });

  it("a node certificate this client does not trust", async () => {
    const outcome = await drce(["ls", "--server", mtls.url]);
    expect(outcome.code).toBe(125);
    expectOnePlainLine(outcome);
    expect(outcome.stderr).toContain("is not signed by a CA this client trusts: pass --cacert FILE");
  });

  it("http:// against a TLS node", async () => {
    const outcome = await drce(["ls", "--server", mtls.url.replace("https:", "http:"), "--connect-timeout", "5"]);
    expect(outcome.code).toBe(125);
    expectOnePlainLine(outcome);
    expect(outcome.stderr).toMatch(/(answered, but not as a drce node|closed the connection without answering as a drce node): .*or it serves TLS \(then use https:/);
  });
});

describe("--token and --token-file", () => {
  const token = "cli-token-77e";
  let secured: TestNode;
  let dir: string;
  beforeAll(async () => {
    secured = await startNode({ token });
    dir = await mkdtemp(join(tmpdir(), "drce-token-"));
    await writeFile(join(dir, "token"), `${token}\n`, { mode: 0o600 });
    await writeFile(join(dir, "empty"), "\n");
  });
  afterAll(async () => {
    await secured.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("a 401 says how to pass a token", async () => {
    const outcome = await drce(["ls", "--server", secured.url]);
    expect(outcome.code).toBe(125);
    expect(outcome.stderr).toBe(`drce: unauthenticated: the node at ${secured.url} requires a token: pass --token T or --token-file FILE (or set DRCE_TOKEN)\n`);
    const wrong = await drce(["ls", "--server", secured.url, "--token", "nope"]);
    expect(wrong.code).toBe(125);
    expect(wrong.stderr).toMatch(/^drce: unauthenticated: the node at \S+ refused the token given/);
  });

  it("every client command takes --token and --token-file", async () => {
    const id = `tok-${process.pid}`;
    const withFile = ["--token-file", join(dir, "token")];
    expect(await drce(["run", "--server", secured.url, "--token", token, "-c", "echo via-flag"])).toMatchObject({ code: 0, stdout: "via-flag\n" });
    expect(await drce(["submit", "--server", secured.url, ...withFile, "--id", id, "--", "echo", "kept"])).toMatchObject({ code: 0 });
    const outcomes = await Promise.all([["status", id], ["logs", id, "-f"], ["ls"], ["node", "info"], ["fetch", id, "--keep"]].map((command) => drce([...command, "--server", secured.url, ...withFile])));
    for (const outcome of outcomes) expect(outcome).toMatchObject({ code: 0, stderr: expect.not.stringMatching(/unauthenticated/) });
    expect(await drce(["--token", token, "--server", secured.url, "rm", id])).toMatchObject({ code: 0 });
  }, 120_000);

  it("refuses both flags at once, an empty token, and names a token file it cannot read", async () => {
    expect(await drce(["ls", "--server", secured.url, "--token", token, "--token-file", join(dir, "token")])).toMatchObject({ code: 2, stderr: expect.stringContaining("give --token or --token-file, not both") });
    expect(await drce(["ls", "--server", secured.url, "--token-file", join(dir, "empty")])).toMatchObject({ code: 2, stderr: expect.stringContaining("the file is empty") });
    expect(await drce(["ls", "--server", secured.url, "--token-file", join(dir, "missing")])).toMatchObject({ code: 1, stderr: expect.stringMatching(/cannot read .*missing: ENOENT/) });
    await expect(tokenFromOptions({}, { DRCE_TOKEN: "from-env" })).resolves.toBe("from-env");
    await expect(tokenFromOptions({ token: "flag" }, { DRCE_TOKEN: "from-env" })).resolves.toBe("flag");
  });
});

describe("drce serve names the port that is taken", () => {
  let dataDir: string;
  let taken: { server: net.Server; port: number };
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "drce-ports-"));
    taken = keep(await listenOn(net.createServer()));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  for (const [flag, others] of [
    ["--listen", ["--no-zmq", "--no-admin-zmq"]],
    ["--zmq-listen", ["--listen", "127.0.0.1:0", "--no-admin-zmq"]],
    ["--admin-zmq-listen", ["--listen", "127.0.0.1:0", "--no-zmq"]],
  ] as const) {
    it(`when ${flag}'s port is in use`, async () => {
      const outcome = await drce(["serve", ...others, flag, `127.0.0.1:${taken.port}`, "--data-dir", dataDir, "--log-level", "silent"]);
      expect(outcome.code).toBe(1);
      expect(outcome.stderr).toBe(`drce serve: cannot listen on 127.0.0.1:${taken.port} (${flag}): the address is already in use\n`);
    });
  }
});
