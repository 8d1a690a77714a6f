import { createHash } from "node:crypto";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stream, TaskMode, TaskState } from "../../gen/drce/v1/task_pb.js";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { runDrce } from "../helpers/cli.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

// A command writing `lines` numbered lines of 64 bytes (4 MiB for 65536) in many small writes
// to stdout, and one line to stderr: many output messages of every size.
const lines = 65_536;
const writer = `i=0; while [ $i -lt ${lines} ]; do printf '%063d\\n' $i; i=$((i+1)); done; echo to-stderr >&2`;
const expectedStdout = (() => {
  const hash = createHash("sha256");
  for (let i = 0; i < lines; i++) hash.update(`${String(i).padStart(63, "0")}\n`);
  return hash.digest("hex");
})();

let node: TestNode;
let wires: { readonly name: string; readonly client: Client<typeof TaskService> }[];
let json: Client<typeof TaskService>;

beforeAll(async () => {
  node = await startNode();
  const transports: [string, Transport][] = [
    ["Connect (binary)", createConnectTransport({ baseUrl: node.url, httpVersion: "2" })],
    ["Connect over HTTP/1.1", createConnectTransport({ baseUrl: node.url, httpVersion: "1.1" })],
    ["gRPC", createGrpcTransport({ baseUrl: node.url })],
  ];
  wires = transports.map(([name, transport]) => ({ name, client: createClient(TaskService, transport) }));
  // JSON stays on Connect's own handler: the answers of the framed route are compared with it.
  json = createClient(TaskService, createConnectTransport({ baseUrl: node.url, httpVersion: "2", useBinaryFormat: false }));
});

afterAll(async () => {
  await node?.stop();
});

let counter = 0;
const uid = (prefix: string): string => `${prefix}-${process.pid}-${++counter}`;

async function failureOf(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await call();
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the call did not fail");
}

describe("RunTask and StreamTaskOutput answered by the framed route", () => {
  it("deliver many chunks of output byte for byte, then the result, on every binary wire", async () => {
    for (const { name, client } of wires) {
      const id = uid("bulk");
      const stdout = createHash("sha256");
      let stderr = "";
      let chunks = 0;
      let offset = 0n;
      let exit: number | undefined;
      for await (const m of client.runTask({ task: { id, command: writer } })) {
        if (m.event.case === "output" && m.event.value.stream === Stream.STDOUT) {
          expect(m.event.value.offset, name).toBe(offset);
          // The decoded bytes are a view into the received frame, not a copy of their own.
          const data = m.event.value.data;
          expect(data.buffer.byteLength, name).toBeGreaterThan(data.length);
          offset += BigInt(m.event.value.data.length);
          stdout.update(m.event.value.data);
          chunks++;
        } else if (m.event.case === "output") stderr += Buffer.from(m.event.value.data).toString();
        else if (m.event.case === "result") exit = m.event.value.exitStatus;
      }
      expect(stdout.digest("hex"), name).toBe(expectedStdout);
      expect(offset, name).toBe(BigInt(lines * 64));
      expect(chunks, name).toBeGreaterThan(1);
      expect(stderr, name).toBe("to-stderr\n");
      expect(exit, name).toBe(0);

      // The kept copy, read back from offsets through the same route.
      const again = createHash("sha256");
      let read = 0;
      for await (const m of client.streamTaskOutput({ task: id, stdoutOffset: 64n })) {
        if (m.event.case === "output" && m.event.value.stream === Stream.STDOUT) {
          again.update(m.event.value.data);
          read += m.event.value.data.length;
        }
      }
      expect(read, name).toBe(lines * 64 - 64);
    }
  });

  it("report a failing command's exit status", async () => {
    for (const { name, client } of wires) {
      const results = [];
      for await (const m of client.runTask({ task: { id: uid("fails"), command: "echo gone >&2; exit 7" } })) if (m.event.case === "result") results.push(m.event.value);
      expect(results.map((r) => [r.state, r.exitStatus]), name).toEqual([[TaskState.FINISHED, 7]]);
    }
  });

  it("answer an unknown task with NotFound and the legacy code, as Connect's handler does", async () => {
    const expected = await failureOf(async () => {
      for await (const _ of json.streamTaskOutput({ task: "no-such-task" })) void _;
    });
    expect(expected.code).toBe(Code.NotFound);
    expect(expected.metadata.get("drce-error-code")).not.toBeNull();
    for (const { name, client } of wires) {
      const error = await failureOf(async () => {
        for await (const _ of client.streamTaskOutput({ task: "no-such-task" })) void _;
      });
      expect([error.code, error.rawMessage, error.metadata.get("drce-error-code")], name).toEqual([expected.code, expected.rawMessage, expected.metadata.get("drce-error-code")]);
    }
  });

  it("refuse a request without a task with InvalidArgument, as Connect's handler does", async () => {
    const expected = await failureOf(async () => {
      for await (const _ of json.runTask({})) void _;
    });
    for (const { name, client } of wires) {
      const error = await failureOf(async () => {
        for await (const _ of client.runTask({})) void _;
      });
      expect([error.code, error.rawMessage], name).toEqual([Code.InvalidArgument, expected.rawMessage]);
    }
  });

  it("refuse an enum number the contract does not declare with InvalidArgument and legacy 103", async () => {
    for (const { name, client } of wires) {
      const error = await failureOf(async () => {
        for await (const _ of client.runTask({ task: { command: "true", mode: 99 as TaskMode } })) void _;
      });
      expect([error.code, error.metadata.get("drce-error-code")], name).toEqual([Code.InvalidArgument, "103"]);
    }
  });

  it("refuse a request over --max-request-bytes with ResourceExhausted, running nothing", async () => {
    const small = await startNode({ maxRequestBytes: 1024 });
    try {
      const transports: [string, Transport][] = [
        ["Connect (binary)", createConnectTransport({ baseUrl: small.url, httpVersion: "2" })],
        ["gRPC", createGrpcTransport({ baseUrl: small.url })],
      ];
      for (const [name, transport] of transports) {
        const client = createClient(TaskService, transport);
        const id = uid("large");
        const error = await failureOf(async () => {
          for await (const _ of client.runTask({ task: { id, command: `echo ${"x".repeat(4096)}` } })) void _;
        });
        expect(error.code, name).toBe(Code.ResourceExhausted);
        expect((await failureOf(() => small.client.getTask({ task: id }))).code, name).toBe(Code.NotFound);
      }
    } finally {
      await small.stop();
    }
  });

  it("terminate the task when the caller cancels mid-stream", async () => {
    for (const { name, client } of wires) {
      const id = uid("cancelled");
      const abort = new AbortController();
      const error = await failureOf(async () => {
        for await (const m of client.runTask({ task: { id, command: "echo started; exec sleep 30" } }, { signal: abort.signal })) {
          if (m.event.case === "output") abort.abort();
        }
      });
      expect(error.code, name).toBe(Code.Canceled);
      const state = await until(
        async () => (await node.client.getTask({ task: id })).result?.state,
        (s) => s === TaskState.TERMINATED,
        10_000,
        `${name}: the cancelled task terminated`,
      );
      expect(state, name).toBe(TaskState.TERMINATED);
    }
  });

  it("end with DeadlineExceeded when the call's timeout passes, and terminate the task", async () => {
    for (const { name, client } of wires) {
      const id = uid("deadline");
      const error = await failureOf(async () => {
        for await (const _ of client.runTask({ task: { id, command: "exec sleep 30" } }, { timeoutMs: 400 })) void _;
      });
      expect(error.code, name).toBe(Code.DeadlineExceeded);
      const state = await until(
        async () => (await node.client.getTask({ task: id })).result?.state,
        (s) => s === TaskState.TERMINATED,
        10_000,
        `${name}: the task past its call's deadline terminated`,
      );
      expect(state, name).toBe(TaskState.TERMINATED);
    }
  });
});

describe("drce run through the framed route", () => {
  it("prints every byte of the output and exits with the command's status", async () => {
    const ok = await runDrce(node.url, ["run", "--", "sh", "-c", writer]);
    expect(ok.code).toBe(0);
    expect(createHash("sha256").update(ok.stdout).digest("hex")).toBe(expectedStdout);
    expect(ok.stderr).toBe("to-stderr\n");
    const failed = await runDrce(node.url, ["run", "--", "sh", "-c", "echo out; exit 3"]);
    expect([failed.code, failed.stdout]).toEqual([3, "out\n"]);
  });
});
