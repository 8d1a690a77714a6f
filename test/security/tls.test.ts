import { rm } from "node:fs/promises";
import https from "node:https";
import tls from "node:tls";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { createApp } from "../../src/app.js";
import { ConfigError, defaultConfig } from "../../src/config.js";
import { startDrce, type CliResult } from "../helpers/cli.js";
import { startNode, type TestNode } from "../helpers/node.js";
import { makeTestPki, type TestPki } from "./certs.js";
import { clientFor } from "./clients.js";

let pki: TestPki;
let httpsNode: TestNode;
let mtlsNode: TestNode;

beforeAll(async () => {
  pki = makeTestPki();
  httpsNode = await startNode({ tlsCert: pki.serverCert, tlsKey: pki.serverKey });
  mtlsNode = await startNode({ tlsCert: pki.serverCert, tlsKey: pki.serverKey, tlsClientCa: pki.ca });
});
afterAll(async () => {
  await httpsNode?.stop();
  await mtlsNode?.stop();
  if (pki !== undefined) await rm(pki.dir, { recursive: true, force: true });
});

const legacyBody = (command: string): string =>
  JSON.stringify({ type: 0, id: 4242, data: Buffer.from(JSON.stringify({ session: { tmode: 1, cleanup: 1 }, command })).toString("base64") });

/** POST /drce over HTTPS (HTTP/1.1, as curl does), with the given TLS options. */
function legacyPost(url: string, body: string, options: https.RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = https.request(`${url}/drce`, { method: "POST", headers: { "content-type": "application/json" }, ...options }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    request.on("error", reject);
    request.end(body);
  });
}

/**
 * Opens a TLS connection, sends an HTTP/1.1 request and reports what came back first: the
 * error that ended the connection, or the first bytes of a reply.
 */
function probe(url: string, options: tls.ConnectionOptions): Promise<{ error?: string; reply?: string; handshakeDone: boolean }> {
  const { hostname, port } = new URL(url);
  let handshakeDone = false;
  return new Promise((resolve) => {
    const socket = tls.connect({ host: hostname, port: Number(port), ALPNProtocols: ["http/1.1"], ...options }, () => {
      handshakeDone = true;
      socket.write(`POST /drce HTTP/1.1\r\nhost: ${hostname}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(legacyBody("true"))}\r\n\r\n${legacyBody("true")}`);
    });
    socket.once("data", (chunk: Buffer) => {
      resolve({ reply: chunk.toString("latin1"), handshakeDone });
      socket.destroy();
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message, handshakeDone }));
    socket.once("close", () => resolve({ error: "closed without a reply", handshakeDone }));
  });
}

describe("a node serving HTTPS", () => {
  it("reports an https:// URL", () => {
    expect(httpsNode.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it("serves Connect over TLS (HTTP/2 by ALPN) to a client trusting the CA", async () => {
    const { client, close } = clientFor(TaskService, httpsNode.url, { tls: { ca: pki.read(pki.ca) } });
    try {
      const { result } = await client.submitTask({ task: create(TaskSpecSchema, { command: "echo over-tls" }) });
      expect(result?.state).toBe(TaskState.FINISHED);
      expect(new TextDecoder().decode(result?.stdout)).toBe("over-tls\n");
    } finally {
      close();
    }
  });

  it("serves gRPC over TLS too", async () => {
    const { client, close } = clientFor(TaskService, httpsNode.url, { tls: { ca: pki.read(pki.ca) }, protocol: "grpc" });
    try {
      const { result } = await client.submitTask({ task: create(TaskSpecSchema, { argv: ["echo", "grpc-tls"] }) });
      expect(new TextDecoder().decode(result?.stdout)).toBe("grpc-tls\n");
    } finally {
      close();
    }
  });

  it("serves the legacy POST /drce over HTTPS with HTTP/1.1", async () => {
    const reply = await legacyPost(httpsNode.url, legacyBody("echo legacy-tls"), { ca: pki.read(pki.ca) });
    expect(reply.status).toBe(200);
    const [item] = JSON.parse(reply.body) as { state: number; stdout: string }[];
    expect(item?.state).toBe(0);
    expect(Buffer.from(item!.stdout, "base64").toString()).toBe("legacy-tls\n");
  });

  it("is not reachable in cleartext on the same port", async () => {
    const plain = clientFor(TaskService, httpsNode.url.replace("https:", "http:"));
    try {
      await expect(plain.client.listTasks({})).rejects.toBeInstanceOf(ConnectError);
    } finally {
      plain.close();
    }
  });

  it("is refused by a client that does not trust its CA", async () => {
    const { client, close } = clientFor(TaskService, httpsNode.url);
    try {
      const error = await client.listTasks({}).then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect([Code.Unavailable, Code.Internal]).toContain(error?.code);
      expect(error?.message).toMatch(/self[- ]signed|unable to verify|certificate/i);
    } finally {
      close();
    }
  });
});

describe("a node requiring client certificates (mTLS)", () => {
  // TLS 1.3 clients finish their side of the handshake before the server has checked their
  // certificate, so the refusal arrives as an alert on the first read; TLS 1.2 clients get it
  // inside the handshake. Either way no request reaches HTTP.
  it("refuses a client without a certificate at the handshake (TLS 1.3: certificate required alert)", async () => {
    const outcome = await probe(mtlsNode.url, { ca: pki.read(pki.ca) });
    expect(outcome).toMatchObject({ error: "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED" });
    expect(outcome.reply).toBeUndefined();
  });

  it("refuses a client without a certificate inside the TLS 1.2 handshake", async () => {
    const outcome = await probe(mtlsNode.url, { ca: pki.read(pki.ca), maxVersion: "TLSv1.2" });
    expect(outcome).toMatchObject({ error: "ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE", handshakeDone: false });
  });

  it("refuses a certificate signed by another CA at the handshake", async () => {
    const stranger = { ca: pki.read(pki.ca), cert: pki.read(pki.strangerCert), key: pki.read(pki.strangerKey) };
    const v12 = await probe(mtlsNode.url, { ...stranger, maxVersion: "TLSv1.2" });
    // The server drops the connection (alert "unknown ca", or a reset when the alert is lost).
    expect(v12.handshakeDone).toBe(false);
    expect(v12.error).toMatch(/UNKNOWN_CA|ECONNRESET/);
    const v13 = await probe(mtlsNode.url, stranger);
    expect(v13.reply).toBeUndefined();
    expect(v13.error).toMatch(/UNKNOWN_CA|closed without a reply|ECONNRESET/);
  });

  it("refuses a Connect call without a client certificate, and never runs it", async () => {
    const { client, close } = clientFor(TaskService, mtlsNode.url, { tls: { ca: pki.read(pki.ca) } });
    try {
      const error = await client.submitTask({ task: create(TaskSpecSchema, { id: "mtls-refused", command: "true" }) }).then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect(error).toBeInstanceOf(ConnectError);
    } finally {
      close();
    }
    const good = clientFor(TaskService, mtlsNode.url, { tls: { ca: pki.read(pki.ca), cert: pki.read(pki.clientCert), key: pki.read(pki.clientKey) } });
    try {
      await expect(good.client.getTask({ task: "mtls-refused" })).rejects.toMatchObject({ code: Code.NotFound });
    } finally {
      good.close();
    }
  });

  it("serves Connect and the legacy endpoint to a client with a certificate the CA signed", async () => {
    const material = { ca: pki.read(pki.ca), cert: pki.read(pki.clientCert), key: pki.read(pki.clientKey) };
    const { client, close } = clientFor(TaskService, mtlsNode.url, { tls: material });
    try {
      const { result } = await client.submitTask({ task: create(TaskSpecSchema, { command: "echo mtls-ok" }) });
      expect(new TextDecoder().decode(result?.stdout)).toBe("mtls-ok\n");
    } finally {
      close();
    }
    const reply = await legacyPost(mtlsNode.url, legacyBody("echo legacy-mtls"), material);
    expect(reply.status).toBe(200);
    expect(Buffer.from((JSON.parse(reply.body) as { stdout: string }[])[0]!.stdout, "base64").toString()).toBe("legacy-mtls\n");
  });
});

describe("drce over TLS", () => {
  /** Runs `drce ARGS` with the caller's token and certificate variables emptied (unless `env` sets them). */
  const drce = (args: string[], env: Record<string, string> = {}): Promise<CliResult> =>
    startDrce(args, { env: { DRCE_TOKEN: "", DRCE_CACERT: "", DRCE_CERT: "", DRCE_CERT_KEY: "", ...env } }).done;

  it("runs a command on an mTLS node with --cacert, --cert and --cert-key", async () => {
    const outcome = await drce(["run", "--server", mtlsNode.url, "--cacert", pki.ca, "--cert", pki.clientCert, "--cert-key", pki.clientKey, "-c", "echo cli-tls; exit 3"]);
    expect(outcome).toMatchObject({ code: 3, stdout: "cli-tls\n" });
  });

  it("takes the same files from DRCE_CACERT, DRCE_CERT and DRCE_CERT_KEY", async () => {
    const outcome = await drce(["ls", "--server", mtlsNode.url], { DRCE_CACERT: pki.ca, DRCE_CERT: pki.clientCert, DRCE_CERT_KEY: pki.clientKey });
    expect(outcome.code).toBe(0);
  });

  it("fails with the node-error exit code, saying why, without a client certificate", async () => {
    const outcome = await drce(["ls", "--server", mtlsNode.url, "--cacert", pki.ca]);
    expect(outcome.code).toBe(125);
    expect(outcome.stderr).toMatch(/drce:/);
  });

  it("drce serve refuses a non-loopback address without a token or client certificates, saying why", async () => {
    const outcome = await drce(["serve", "--listen", "0.0.0.0:0", "--no-zmq", "--data-dir", pki.dir]);
    expect(outcome.code).toBe(2);
    expect(outcome.stderr).toMatch(/refusing to listen on 0\.0\.0\.0 without credentials.*--token.*--tls-client-ca/);
  });

  it("drce serve names the TLS file it cannot read", async () => {
    const outcome = await drce(["serve", "--listen", "127.0.0.1:0", "--no-zmq", "--no-admin-zmq", "--data-dir", pki.dir, "--tls-cert", `${pki.dir}/nope.pem`, "--tls-key", pki.serverKey]);
    expect(outcome.code).toBe(2);
    expect(outcome.stderr).toMatch(/--tls-cert .*nope\.pem: ENOENT/);
  });

  it("refuses --cert without --cert-key as a usage error", async () => {
    const outcome = await drce(["ls", "--server", mtlsNode.url, "--cert", pki.clientCert]);
    expect(outcome.code).toBe(2);
    expect(outcome.stderr).toMatch(/--cert and --cert-key go together/);
  });
});

describe("TLS start-up checks", () => {
  it("refuses a key that does not match the certificate, naming the flags", async () => {
    const config = { ...defaultConfig(), listen: "127.0.0.1:0", zmqListen: "", logLevel: "silent", dataDir: pki.dir, tlsCert: pki.serverCert, tlsKey: pki.clientKey };
    await expect(createApp(config)).rejects.toThrow(ConfigError);
    await expect(createApp(config)).rejects.toThrow(/--tls-cert\/--tls-key/);
  });

  it("refuses a missing certificate file, naming the flag", async () => {
    const config = { ...defaultConfig(), listen: "127.0.0.1:0", zmqListen: "", logLevel: "silent", dataDir: pki.dir, tlsCert: `${pki.dir}/missing.pem`, tlsKey: pki.serverKey };
    await expect(createApp(config)).rejects.toThrow(/--tls-cert .*missing\.pem: ENOENT/);
  });
});
