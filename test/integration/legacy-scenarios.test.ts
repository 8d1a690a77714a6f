import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { createApp, type App } from "../../src/app.js";
import { defaultConfig } from "../../src/config.js";
import { FileAction } from "../../src/domain/task.js";
import { handleLegacyHttp } from "../../src/gateway/http.js";
import { createLegacyHandler } from "../../src/gateway/legacy-handler.js";
import { createZmqGateway } from "../../src/gateway/zmq.js";

/*
 * Runs every scenario of test/fixtures/legacy-examples/ (the worked examples of the protocol)
 * against a real node, over HTTP and over ZeroMQ as the original clients speak them.
 *
 * Step keys: `request` (sent as JSON) or `raw` (sent as is); `wait_until_state` polls a simple
 * check of the request's id until its state equals the value, with a deadline. Expectation
 * keys apply to the first item of the reply: id, error_code, error_code_in, state, state_in,
 * exit_status, stdout (base64-decoded equals), stdout_contains, files (exact list, data compared
 * decoded per bit 31), files_contain, fields_have, subtask_ids, all_states, all_stdout.
 */

interface Expectation {
  id?: number | string;
  error_code?: number;
  error_code_in?: number[];
  state?: number;
  state_in?: number[];
  exit_status?: number;
  stdout?: string;
  stdout_contains?: string;
  files?: { name: string; data: string; action: number }[];
  files_contain?: { name: string; data_contains: string }[];
  fields_have?: string[];
  subtask_ids?: (number | string)[];
  all_states?: number;
  all_stdout?: string;
}

interface Step {
  request?: { id?: number | string } & Record<string, unknown>;
  raw?: string;
  wait_until_state?: number;
  expect: Expectation;
}

interface Scenario {
  about: string;
  steps: Step[];
}

interface Item {
  id: number | string;
  error_code: number;
  error_message: string;
  state: number;
  exit_status: number;
  stdout: string;
  files: { name: string; data: string; action: number }[];
  fields: Record<string, string> | [];
  subtasks: Item[];
}

/** Sends one body and returns the reply body. */
type Send = (body: string) => Promise<string>;

const fixtures = new URL("../fixtures/legacy-examples/", import.meta.url);
const scenarioFiles = (await readdir(fixtures)).filter((f) => f.endsWith(".json")).sort();
const scenarios: [string, Scenario][] = await Promise.all(
  scenarioFiles.map(async (f): Promise<[string, Scenario]> => [f, JSON.parse(await readFile(new URL(f, fixtures), "utf8")) as Scenario]),
);

const stateDeadlineMs = 20_000;

const decoded = (b64: string): Buffer => Buffer.from(b64, "base64");

function fileText(file: { data: string; action: number }): Buffer {
  return ((file.action >>> 0) & FileAction.Base64) !== 0 ? decoded(file.data) : Buffer.from(file.data, "utf8");
}

function everyItem(item: Item): Item[] {
  return [item, ...item.subtasks.flatMap(everyItem)];
}

function checkExpectation(item: Item, e: Expectation, where: string): void {
  const ctx = `${where}: ${JSON.stringify({ ...item, subtasks: `[${item.subtasks.length}]` })}`;
  if (e.id !== undefined) expect(item.id, ctx).toEqual(e.id);
  if (e.error_code !== undefined) expect(item.error_code, ctx).toBe(e.error_code);
  if (e.error_code_in !== undefined) expect(e.error_code_in, ctx).toContain(item.error_code);
  if (e.state !== undefined) expect(item.state, ctx).toBe(e.state);
  if (e.state_in !== undefined) expect(e.state_in, ctx).toContain(item.state);
  if (e.exit_status !== undefined) expect(item.exit_status, ctx).toBe(e.exit_status);
  if (e.stdout !== undefined) expect(decoded(item.stdout).toString("utf8"), ctx).toBe(e.stdout);
  if (e.stdout_contains !== undefined) expect(decoded(item.stdout).toString("utf8"), ctx).toContain(e.stdout_contains);
  if (e.files !== undefined) {
    expect(item.files.map((f) => [f.name, f.action >>> 0, fileText(f).toString("hex")]), ctx).toEqual(
      e.files.map((f) => [f.name, f.action >>> 0, fileText(f).toString("hex")]),
    );
  }
  for (const want of e.files_contain ?? []) {
    const file = item.files.find((f) => f.name === want.name);
    expect(file, `${ctx}: file ${want.name}`).toBeDefined();
    expect(fileText(file!).toString("utf8"), ctx).toContain(want.data_contains);
  }
  if (e.fields_have !== undefined) {
    expect(Array.isArray(item.fields), `${ctx}: fields must be an object`).toBe(false);
    for (const key of e.fields_have) expect(Object.keys(item.fields), ctx).toContain(key);
  }
  if (e.subtask_ids !== undefined) expect(item.subtasks.map((s) => s.id), ctx).toEqual(e.subtask_ids);
  if (e.all_states !== undefined) for (const each of everyItem(item)) expect(each.state, `${ctx}: task ${each.id}`).toBe(e.all_states);
  if (e.all_stdout !== undefined) {
    for (const each of everyItem(item)) expect(decoded(each.stdout).toString("utf8"), `${ctx}: task ${each.id}`).toBe(e.all_stdout);
  }
}

async function firstItem(send: Send, body: string): Promise<Item> {
  const reply = await send(body);
  const items = JSON.parse(reply) as Item[];
  expect(Array.isArray(items), reply).toBe(true);
  expect(items.length, reply).toBeGreaterThanOrEqual(1);
  return items[0]!;
}

async function waitUntilState(send: Send, id: number | string, state: number): Promise<void> {
  const check = JSON.stringify({ type: 1, id, data: Buffer.from(JSON.stringify({ type: 1 })).toString("base64") });
  const deadline = Date.now() + stateDeadlineMs;
  let last: Item | undefined;
  let pause = 5;
  while (Date.now() < deadline) {
    last = await firstItem(send, check);
    if (last.state === state) return;
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 100);
  }
  throw new Error(`task ${id} did not reach state ${state} within ${stateDeadlineMs} ms; last: ${JSON.stringify(last)}`);
}

async function runScenario(send: Send, scenario: Scenario): Promise<void> {
  for (const [index, step] of scenario.steps.entries()) {
    if (step.wait_until_state !== undefined) {
      if (step.request?.id === undefined) throw new Error(`step ${index}: wait_until_state needs a request id`);
      await waitUntilState(send, step.request.id, step.wait_until_state);
    }
    const body = step.raw ?? JSON.stringify(step.request);
    checkExpectation(await firstItem(send, body), step.expect, `step ${index}`);
  }
}

/** A node for one transport, and how to reach it; falls back to a gateway over app.core while app.ts does not mount one. */
interface Node {
  app: App;
  dataDir: string;
  send: Send;
  close(): Promise<void>;
}

async function startApp(): Promise<{ app: App; dataDir: string; url: string; zmqEndpoint: string }> {
  const dataDir = await mkdtemp(join(tmpdir(), "drce-legacy-"));
  const app = await createApp({
    ...defaultConfig(),
    listen: "127.0.0.1:0",
    zmqListen: "127.0.0.1:0",
    adminZmqListen: "",
    dataDir,
    name: "legacy-scenarios",
    logLevel: "silent",
    sampleIntervalMs: 100,
    shutdownGraceMs: 2000,
  });
  const { url, zmqEndpoint } = await app.listen();
  return { app, dataDir, url, zmqEndpoint };
}

function postTo(url: string): Send {
  return async (body) => {
    const res = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json" } });
    return res.text();
  };
}

async function servesLegacyHttp(url: string): Promise<boolean> {
  try {
    const reply = JSON.parse(await postTo(url)("{not json")) as unknown;
    return Array.isArray(reply) && (reply[0] as Item | undefined)?.error_code === 1;
  } catch {
    return false;
  }
}

async function startHttpNode(): Promise<Node> {
  const { app, dataDir, url } = await startApp();
  if (await servesLegacyHttp(`${url}/drce`)) {
    return { app, dataDir, send: postTo(`${url}/drce`), close: () => app.close() };
  }
  // app.ts does not mount POST /drce yet: serve the gateway over the app's own core.
  const handler = createLegacyHandler({ core: app.core, identity: { host: "127.0.0.1", port: 0, node: "legacy-scenarios" } });
  const server = http.createServer((req, res) => void handleLegacyHttp(handler, req, res, { maxBodyBytes: 16 * 1024 * 1024 }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    app,
    dataDir,
    send: postTo(`http://127.0.0.1:${port}/drce`),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await app.close();
    },
  };
}

function dealerSend(endpoint: string): { send: Send; close(): void } {
  const socket = new Dealer({ routingId: `scenario-client-${process.pid}`, linger: 0, receiveTimeout: 60_000 });
  socket.connect(endpoint);
  let next = 0;
  // One request at a time per scenario; replies are still matched by their id frame.
  let chain: Promise<unknown> = Promise.resolve();
  const send: Send = (body) => {
    const result = chain.then(async () => {
      const id = String(++next);
      await socket.send([id, body]);
      for (;;) {
        const [replyId, reply] = await socket.receive();
        if (replyId?.toString() === id) return reply!.toString("utf8");
      }
    });
    chain = result.catch(() => undefined);
    return result;
  };
  return { send, close: () => socket.close() };
}

async function startZmqNode(): Promise<Node> {
  const { app, dataDir, zmqEndpoint } = await startApp();
  let endpoint = zmqEndpoint;
  let gatewayClose: () => Promise<void> = async () => undefined;
  if (endpoint === "") {
    // app.ts does not start the ZeroMQ gateway yet: serve it over the app's own core.
    const handler = createLegacyHandler({ core: app.core, identity: { host: "127.0.0.1", port: 0, node: "legacy-scenarios" } });
    const gateway = await createZmqGateway({ handler, endpoint: "tcp://127.0.0.1:0" });
    endpoint = gateway.endpoint;
    gatewayClose = () => gateway.close();
  }
  const client = dealerSend(endpoint);
  return {
    app,
    dataDir,
    send: client.send,
    async close() {
      client.close();
      await gatewayClose();
      await app.close();
    },
  };
}

for (const [transport, start] of [
  ["HTTP", startHttpNode],
  ["ZeroMQ", startZmqNode],
] as const) {
  describe(`legacy scenarios over ${transport}`, () => {
    let node: Node;
    beforeAll(async () => {
      node = await start();
    }, 30_000);
    afterAll(async () => {
      await node?.close();
      if (node !== undefined) await rm(node.dataDir, { recursive: true, force: true });
    }, 30_000);

    for (const [file, scenario] of scenarios) {
      it(`${file}: ${scenario.about}`, async () => {
        await runScenario(node.send, scenario);
      }, 60_000);
    }
  });
}
