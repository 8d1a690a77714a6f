import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Stream } from "../../gen/drce/v1/task_pb.js";
import { RunTaskResponseSchema, StreamTaskOutputResponseSchema } from "../../gen/drce/v1/task_service_pb.js";
import type { OutputChunk } from "../../src/core/api.js";
import { outputFrame } from "../../src/connect/output-frames.js";

/** The envelope Connect's handler writes around a message: flags 0, its length, the message. */
function envelope(message: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** What the framed route writes for a chunk: its header, the chunk's own bytes, the node's field. */
function framed(outputField: number, nodeField: number, chunk: OutputChunk, node: string | undefined): Buffer {
  const [head, tail] = outputFrame(outputField, nodeField, chunk, node);
  return Buffer.concat([head, chunk.data, ...(tail === undefined ? [] : [tail])]);
}

const cases: { readonly what: string; readonly chunk: OutputChunk; readonly node?: string }[] = [
  { what: "a chunk of stdout at offset 0", chunk: { stream: "stdout", offset: 0, data: Buffer.from("hello\n") } },
  { what: "a 1 MiB chunk of stderr far into its stream", chunk: { stream: "stderr", offset: 2 ** 40 + 12345, data: Buffer.alloc(1024 * 1024, 7) } },
  { what: "a chunk past 2^53 / 2 bytes", chunk: { stream: "stdout", offset: Number.MAX_SAFE_INTEGER - 1, data: Buffer.from([0, 1, 2]) } },
  { what: "an empty chunk", chunk: { stream: "stdout", offset: 300, data: Buffer.alloc(0) } },
  { what: "a chunk of 127 and of 128 bytes (one and two length bytes)", chunk: { stream: "stdout", offset: 127, data: Buffer.alloc(128, 1) } },
  { what: "a chunk from a named node", chunk: { stream: "stderr", offset: 5, data: Buffer.from("x") }, node: "build-7" },
  { what: "a chunk from a node with an empty name", chunk: { stream: "stdout", offset: 0, data: Buffer.from("y") }, node: "" },
];

describe("outputFrame", () => {
  for (const { what, chunk, node } of cases) {
    it(`writes exactly the bytes toBinary writes, for ${what}`, () => {
      const output = { stream: chunk.stream === "stdout" ? Stream.STDOUT : Stream.STDERR, offset: BigInt(chunk.offset), data: chunk.data };
      const nodeField = node === undefined ? {} : { node };
      const run = toBinary(RunTaskResponseSchema, create(RunTaskResponseSchema, { event: { case: "output", value: output }, ...nodeField }));
      const stream = toBinary(StreamTaskOutputResponseSchema, create(StreamTaskOutputResponseSchema, { event: { case: "output", value: output }, ...nodeField }));
      expect(framed(2, 6, chunk, node).equals(envelope(run))).toBe(true);
      expect(framed(1, 4, chunk, node).equals(envelope(stream))).toBe(true);
    });
  }

  it("never copies the chunk: the header holds only the envelope, the tags and the lengths", () => {
    const [head] = outputFrame(2, 6, { stream: "stdout", offset: 1 << 20, data: Buffer.alloc(1024 * 1024) }, undefined);
    expect(head.length).toBeLessThan(20);
  });
});
