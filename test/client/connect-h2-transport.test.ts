import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { GetTaskResponseSchema, StreamTaskOutputResponseSchema, TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { createServiceClient } from "../../src/client/service-client.js";

let server: http2.Http2Server | undefined;
const closers: (() => void)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0)) close();
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  server = undefined;
});

/** Starts an HTTP/2 server on port 0 that answers each stream as `answer` does; resolves its URL. */
async function serve(answer: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void): Promise<string> {
  server = http2.createServer();
  server.on("stream", answer);
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function client(url: string) {
  const made = createServiceClient(TaskService, { server: url, token: "t0k" });
  closers.push(() => made.close());
  return made.client;
}

function envelope(flags: number, payload: Uint8Array): Buffer {
  const bytes = Buffer.alloc(5 + payload.byteLength);
  bytes[0] = flags;
  bytes.writeUInt32BE(payload.byteLength, 1);
  bytes.set(payload, 5);
  return bytes;
}

async function deadline<T>(what: () => T | undefined, ms = 5000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = what();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error("the state did not come in time");
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe("drce's Connect transport", () => {
  it("sends a unary call as Connect's binary protocol with the token and decodes the answer", async () => {
    let seen: http2.IncomingHttpHeaders | undefined;
    const url = await serve((stream, headers) => {
      seen = headers;
      stream.resume();
      stream.on("end", () => {
        stream.respond({ ":status": 200, "content-type": "application/proto" });
        stream.end(toBinary(GetTaskResponseSchema, create(GetTaskResponseSchema, { result: { id: "t1" } })));
      });
    });
    const answer = await client(url).getTask({ task: "t1" }, { timeoutMs: 5000 });
    expect(answer.result?.id).toBe("t1");
    expect(seen).toMatchObject({ ":path": "/drce.v1.TaskService/GetTask", "content-type": "application/proto", "connect-protocol-version": "1", "connect-timeout-ms": "5000", authorization: "Bearer t0k" });
  });

  it("gives a unary error its code, message, details and metadata from headers and trailer- fields", async () => {
    const url = await serve((stream) => {
      stream.resume();
      stream.on("end", () => {
        stream.respond({ ":status": 404, "content-type": "application/json", "drce-error-code": "203", "trailer-retry-after": "2" });
        stream.end(JSON.stringify({ code: "not_found", message: "no task t9", details: [{ type: "google.protobuf.Empty", value: "" }] }));
      });
    });
    const error = await client(url).getTask({ task: "t9" }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    const connect = error as ConnectError;
    expect([connect.code, connect.rawMessage, connect.metadata.get("drce-error-code"), connect.metadata.get("retry-after"), connect.details.length]).toEqual([Code.NotFound, "no task t9", "203", "2", 1]);
  });

  it("decodes streamed messages split across chunks and byte by byte, then the end-stream trailers", async () => {
    const url = await serve((stream) => {
      stream.resume();
      stream.on("end", () => {
        stream.respond({ ":status": 200, "content-type": "application/connect+proto" });
        const messages = [0, 1, 2].map((n) => envelope(0, toBinary(StreamTaskOutputResponseSchema, create(StreamTaskOutputResponseSchema, { event: { case: "result", value: { id: `m${n}`.repeat(1000) } } }))));
        const all = Buffer.concat([...messages, envelope(2, Buffer.from(JSON.stringify({ metadata: { "drce-end": ["yes"] } })))]);
        // One byte at a time, then the rest in one chunk: headers and payloads both split.
        let offset = 0;
        const step = (): void => {
          if (offset >= all.length) return void stream.end();
          const size = offset < 40 ? 1 : all.length;
          stream.write(all.subarray(offset, offset + size), step);
          offset += size;
        };
        step();
      });
    });
    const ids: string[] = [];
    let trailer: Headers | undefined;
    for await (const answer of client(url).streamTaskOutput({ task: "t" }, { onTrailer: (t: Headers) => (trailer = t) })) ids.push(answer.event.case === "result" ? answer.event.value.id : "");
    expect(ids).toEqual(["m0", "m1", "m2"].map((id) => id.repeat(1000)));
    expect(trailer?.get("drce-end")).toBe("yes");
  });

  it("ends a stream whose end-stream message is {} with its messages, no trailers and no error, and fails one whose end is not JSON", async () => {
    const ending = (end: string) =>
      serve((stream) => {
        stream.resume();
        stream.on("end", () => {
          stream.respond({ ":status": 200, "content-type": "application/connect+proto" });
          const message = envelope(0, toBinary(StreamTaskOutputResponseSchema, create(StreamTaskOutputResponseSchema, { event: { case: "result", value: { id: "only" } } })));
          stream.end(Buffer.concat([message, envelope(2, Buffer.from(end))]));
        });
      });
    const ids: string[] = [];
    let trailer: Headers | undefined;
    for await (const answer of client(await ending("{}")).streamTaskOutput({ task: "t" }, { onTrailer: (t: Headers) => (trailer = t) })) ids.push(answer.event.case === "result" ? answer.event.value.id : "");
    expect(ids).toEqual(["only"]);
    expect([...(trailer?.keys() ?? [])]).toEqual([]);
    const error = await (async () => {
      for await (const answer of client(await ending("{}}")).streamTaskOutput({ task: "t" })) void answer;
    })().then(() => undefined, (e: unknown) => e as ConnectError);
    expect(error?.code).toBeDefined();
    expect(error?.rawMessage).toMatch(/end stream|protocol/i);
  });

  it("ends a stream's iteration with the end-stream error's code and message", async () => {
    const url = await serve((stream) => {
      stream.resume();
      stream.on("end", () => {
        stream.respond({ ":status": 200, "content-type": "application/connect+proto" });
        stream.end(envelope(2, Buffer.from(JSON.stringify({ error: { code: "resource_exhausted", message: "full" }, metadata: { "retry-after": ["3"] } }))));
      });
    });
    const error = await (async () => {
      for await (const answer of client(url).streamTaskOutput({ task: "t" })) void answer;
    })().then(() => undefined, (e: unknown) => e as ConnectError);
    expect([error?.code, error?.rawMessage, error?.metadata.get("retry-after")]).toEqual([Code.ResourceExhausted, "full", "3"]);
  });

  it("cancels the HTTP/2 stream with RST_STREAM CANCEL when the caller's signal aborts", async () => {
    let reset: number | undefined;
    let opened: true | undefined;
    const url = await serve((stream) => {
      stream.resume();
      stream.respond({ ":status": 200, "content-type": "application/connect+proto" });
      stream.write(envelope(0, new Uint8Array(0)), () => (opened = true));
      stream.on("close", () => (reset = stream.rstCode));
    });
    const leaving = new AbortController();
    const call = (async () => {
      for await (const answer of client(url).streamTaskOutput({ task: "t" }, { signal: leaving.signal })) void answer;
    })().then(() => undefined, (e: unknown) => e as ConnectError);
    await deadline(() => opened);
    leaving.abort();
    expect((await call)?.code).toBe(Code.Canceled);
    expect(await deadline(() => reset)).toBe(http2.constants.NGHTTP2_CANCEL);
  });

  it("fails a call past its timeout with DeadlineExceeded and cancels its stream", async () => {
    let reset: number | undefined;
    const url = await serve((stream) => {
      stream.resume();
      stream.on("close", () => (reset = stream.rstCode));
    });
    const error = await client(url).getTask({ task: "t" }, { timeoutMs: 100 }).then(() => undefined, (e: unknown) => e as ConnectError);
    expect(error?.code).toBe(Code.DeadlineExceeded);
    expect(await deadline(() => reset)).toBe(http2.constants.NGHTTP2_CANCEL);
  });
});
