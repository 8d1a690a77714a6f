import { readFileSync, rmSync } from "node:fs";
import { PassThrough, Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { createServer } from "node:net";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { createDrceClient, DrceCallError, isCallError, type DrceClient, type RunEvent } from "../../src/client/index.js";
import { makeTestPki, type TestPki } from "../security/certs.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

let node: TestNode;
let drce: DrceClient;

beforeAll(async () => {
  node = await startNode();
  drce = createDrceClient({ server: node.url });
});

afterAll(async () => {
  drce?.close();
  await node?.stop();
});

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("utf8");

/** A writable that keeps what it is given, taking each write only after a turn of the event loop. */
function slowSink(highWaterMark = 1024): Writable & { bytes(): Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    highWaterMark,
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      setImmediate(done);
    },
  });
  return Object.assign(sink, { bytes: () => Buffer.concat(chunks) });
}

async function expectCallError(promise: Promise<unknown>): Promise<DrceCallError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(DrceCallError);
  return error as DrceCallError;
}

describe("the client library's run", () => {
  it("yields the accepted task, its output on both streams as it comes, then its result", async () => {
    const events: RunEvent[] = [];
    for await (const event of drce.run({ command: "echo out; echo err >&2; exit 3" })) events.push(event);
    expect(events[0]?.kind).toBe("accepted");
    const last = events.at(-1);
    expect(last?.kind).toBe("result");
    if (last?.kind !== "result") throw new Error("no result");
    expect(last.result.state).toBe(TaskState.FINISHED);
    expect(last.result.exitStatus).toBe(3);
    const output = (stream: string): string => text(Buffer.concat(events.flatMap((e) => (e.kind === "output" && e.stream === stream ? [e.data] : []))));
    expect(output("stdout")).toBe("out\n");
    expect(output("stderr")).toBe("err\n");
  });

  it("terminates the task when the caller stops iterating early", async () => {
    let id = "";
    for await (const event of drce.run({ argv: ["sh", "-c", "echo started; exec sleep 60"] })) {
      if (event.kind === "accepted") id = event.result.id;
      if (event.kind === "output") break;
    }
    expect(id).not.toBe("");
    const ended = await until(
      async () => (await node.client.getTask({ task: id })).result?.state,
      (state) => state === TaskState.TERMINATED,
      15_000,
      "the abandoned run to be terminated",
    );
    expect(ended).toBe(TaskState.TERMINATED);
  });
});

describe("the client library's submit, submitAndWait and wait", () => {
  it("submits async by default, answers at once, and wait resolves with the final result", async () => {
    const submitted = await drce.submit({ id: "lib-async-1", argv: ["sh", "-c", "sleep 0.3; echo done"] });
    expect(submitted.existing).toBe(false);
    expect(submitted.result.mode).toBe(TaskMode.ASYNC);
    expect([TaskState.NEW, TaskState.IN_PROGRESS, TaskState.QUEUED]).toContain(submitted.result.state);
    const result = await drce.wait("lib-async-1");
    expect(result.state).toBe(TaskState.FINISHED);
    expect(result.exitStatus).toBe(0);
    const again = await drce.submit({ id: "lib-async-1", argv: ["sh", "-c", "sleep 0.3; echo done"] });
    expect(again.existing).toBe(true);
  });

  it("wait answers for a task that ended before it was called", async () => {
    await drce.submitAndWait({ id: "lib-done-1", command: "exit 7" });
    const result = await drce.wait("lib-done-1");
    expect(result.exitStatus).toBe(7);
  });

  it("submitAndWait resolves once the task is done, with its inline output", async () => {
    const result = await drce.submitAndWait({ command: "printf 'a\\nb\\n'; exit 2" });
    expect(result.state).toBe(TaskState.FINISHED);
    expect(result.exitStatus).toBe(2);
    expect(text(result.stdout)).toBe("a\nb\n");
  });

  it("takes a TaskSpec message as well as its fields", async () => {
    const result = await drce.submitAndWait(create(TaskSpecSchema, { argv: ["echo", "message"] }));
    expect(text(result.stdout)).toBe("message\n");
  });
});

describe("the client library's follow and fetchOutput", () => {
  it("follows a task's output from an offset to its end", async () => {
    await drce.submit({ id: "lib-follow-1", command: "printf 0123; sleep 0.3; printf 456789" });
    const chunks: Uint8Array[] = [];
    let final = false;
    for await (const event of drce.follow("lib-follow-1", { stdoutOffset: 2 })) {
      if (event.kind === "output") chunks.push(event.data);
      if (event.kind === "result") final = event.result.state === TaskState.FINISHED;
    }
    expect(text(Buffer.concat(chunks))).toBe("23456789");
    expect(final).toBe(true);
  });

  it("without follow stops at what is written so far", async () => {
    await drce.submitAndWait({ id: "lib-follow-2", command: "printf abcdef" });
    const chunks: Uint8Array[] = [];
    for await (const event of drce.follow("lib-follow-2", { follow: false, stdoutOffset: 3 })) if (event.kind === "output") chunks.push(event.data);
    expect(text(Buffer.concat(chunks))).toBe("def");
  });

  it("writes output larger than a reply carries to slow streams, every byte, then deletes the task", async () => {
    const bytes = 3 * 1024 * 1024 + 17;
    await drce.submit({ id: "lib-fetch-1", command: `head -c ${bytes} /dev/urandom | od -An -v -tx1 | head -c ${bytes}; echo tail >&2` });
    const stdout = slowSink();
    const stderr = new PassThrough();
    const errText: Buffer[] = [];
    stderr.on("data", (chunk: Buffer) => errText.push(chunk));
    const fetched = await drce.fetchOutput("lib-fetch-1", { stdout, stderr, delete: true });
    expect(fetched.result.state).toBe(TaskState.FINISHED);
    expect(fetched.stdoutBytes).toBe(bytes);
    expect(stdout.bytes().length).toBe(bytes);
    // Each wait for a drain took its listeners away with it.
    expect([stdout.listenerCount("drain"), stdout.listenerCount("close")]).toEqual([0, 0]);
    expect(Number(fetched.result.stdoutSize)).toBe(bytes);
    expect(fetched.stderrBytes).toBe(5);
    expect(Buffer.concat(errText).toString()).toBe("tail\n");
    expect(fetched.gaps).toEqual([]);
    // The reply itself carried only the node's inline share of the output.
    expect(fetched.result.stdoutMoreAvailable).toBe(true);
    const gone = await expectCallError(drce.wait("lib-fetch-1"));
    expect(gone.code).toBe(Code.NotFound);
  });

  it("reads only the stream it is given a destination for", async () => {
    await drce.submitAndWait({ id: "lib-fetch-2", command: "echo only-out; echo not-read >&2" });
    const stdout = slowSink();
    const fetched = await drce.fetchOutput("lib-fetch-2", { stdout });
    expect(stdout.bytes().toString()).toBe("only-out\n");
    expect(fetched.stderrBytes).toBe(0);
    expect(fetched.result.id).toBe("lib-fetch-2");
  });

  it("fails when the destination closes before it took the output", async () => {
    await drce.submitAndWait({ id: "lib-fetch-3", command: "head -c 4000000 /dev/zero" });
    let writes = 0;
    // Closes itself at its second write, while the output still comes.
    const sink: Writable = new Writable({
      highWaterMark: 16,
      write: (_chunk, _encoding, done) => {
        writes += 1;
        if (writes === 2) sink.destroy();
        setImmediate(done);
      },
    });
    await expect(drce.fetchOutput("lib-fetch-3", { stdout: sink })).rejects.toThrow("the output stream closed before it took all the bytes");
  });

  it("fails at once on a destination that is closed already", async () => {
    const sink = new PassThrough();
    sink.destroy();
    await expect(drce.fetchOutput("lib-fetch-3", { stdout: sink })).rejects.toThrow("the output stream closed before it took all the bytes");
  });
});

describe("the client library's errors", () => {
  it("an unknown id is NotFound, kind not-found", async () => {
    const error = await expectCallError(drce.wait("no-such-task"));
    expect(error.code).toBe(Code.NotFound);
    expect(error.kind).toBe("not-found");
    expect(isCallError(error, Code.NotFound)).toBe(true);
  });

  it("an enum number the contract does not declare is InvalidArgument with legacy 103", async () => {
    const error = await expectCallError(drce.submit({ command: "true", mode: 99 as TaskMode }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.legacyCode).toBe(103);
    expect(error.message).toMatch(/task\.mode: 99 is not a TaskMode value/);
  });

  it("an id reused for a different request is AlreadyExists with legacy 104", async () => {
    await drce.submitAndWait({ id: "lib-reused", command: "true" });
    const error = await expectCallError(drce.submit({ id: "lib-reused", command: "false" }));
    expect(error.code).toBe(Code.AlreadyExists);
    expect(error.kind).toBe("exists");
    expect(error.legacyCode).toBe(104);
  });

  it("a refused variable is InvalidArgument with legacy 102", async () => {
    const error = await expectCallError(drce.submitAndWait({ command: "true", env: { LD_PRELOAD: "/x.so" } }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.legacyCode).toBe(102);
  });

  it("a failed stream call rejects the iteration with a DrceCallError", async () => {
    const iterate = async (): Promise<void> => {
      for await (const _event of drce.follow("no-such-task")) void _event;
    };
    const error = await expectCallError(iterate());
    expect(error.code).toBe(Code.NotFound);
  });

  it("a node that is not there is Unavailable", async () => {
    const port = await freePort();
    const lonely = createDrceClient({ server: `http://127.0.0.1:${port}`, connectTimeoutMs: 2000 });
    try {
      const error = await expectCallError(lonely.submit({ command: "true" }));
      expect(error.code).toBe(Code.Unavailable);
      expect(error.kind).toBe("unavailable");
    } finally {
      lonely.close();
    }
  });

  it("refuses a server URL with a path, or not http(s), when created", () => {
    expect(() => createDrceClient({ server: "http://127.0.0.1:8470/drce" })).toThrow(/no path.*use http:\/\/127\.0\.0\.1:8470/);
    expect(() => createDrceClient({ server: "tcp://127.0.0.1:5557" })).toThrow(TypeError);
    expect(() => createDrceClient({ server: "127.0.0.1:8470" })).toThrow(/not a URL/);
    expect(() => createDrceClient({ server: "http://127.0.0.1:8470", connectTimeoutMs: -1 })).toThrow(/connectTimeoutMs/);
  });
});

describe("the client library's token and TLS options", () => {
  let pki: TestPki;
  let secured: TestNode;

  beforeAll(async () => {
    pki = makeTestPki();
    secured = await startNode({ tlsCert: pki.serverCert, tlsKey: pki.serverKey, tlsClientCa: pki.ca, token: "s3cret" });
  });

  afterAll(async () => {
    await secured?.stop();
    if (pki !== undefined) rmSync(pki.dir, { recursive: true, force: true });
  });

  it("reaches an mTLS node with a token, CA and client certificate given as PEM text", async () => {
    const client = createDrceClient({
      server: secured.url,
      token: "s3cret",
      tls: { ca: readFileSync(pki.ca, "utf8"), cert: readFileSync(pki.clientCert, "utf8"), key: pki.read(pki.clientKey) },
    });
    try {
      const result = await client.submitAndWait({ argv: ["echo", "secure"] });
      expect(text(result.stdout)).toBe("secure\n");
    } finally {
      client.close();
    }
  });

  it("without the token the call is Unauthenticated, kind denied", async () => {
    const client = createDrceClient({ server: secured.url, tls: { ca: pki.read(pki.ca), cert: pki.read(pki.clientCert), key: pki.read(pki.clientKey) } });
    try {
      const error = await expectCallError(client.submitAndWait({ command: "true" }));
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.kind).toBe("denied");
    } finally {
      client.close();
    }
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
