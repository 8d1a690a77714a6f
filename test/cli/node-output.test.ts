import { PassThrough } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { OutputChunkSchema, OutputGapSchema, Stream } from "../../gen/drce/v1/task_pb.js";
import type { CliIo } from "../../src/cli/io.js";
import { createNodeOutput } from "../../src/cli/node-output.js";

/** An io whose stdout and stderr are collected as text. */
function collectingIo(): { io: CliIo; stdout: () => string; stderr: () => string } {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = "";
  let stderr = "";
  out.setEncoding("utf8").on("data", (text: string) => (stdout += text));
  err.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  return { io: { stdin: new PassThrough(), stdout: out, stderr: err, env: {} }, stdout: () => stdout, stderr: () => stderr };
}

const piece = (text: string | Uint8Array, stream = Stream.STDOUT) => create(OutputChunkSchema, { stream, data: typeof text === "string" ? Buffer.from(text) : text });

describe("createNodeOutput", () => {
  it("joins a line split over three chunks per node and stream, and keeps other nodes' lines whole", async () => {
    const { io, stdout, stderr } = collectingIo();
    const output = createNodeOutput({ io, prefix: true, names: ["web-1", "db"] });
    await output.chunk("web-1", piece("ab"));
    await output.chunk("db", piece("x", Stream.STDERR));
    await output.chunk("db", piece("y\n"));
    await output.chunk("web-1", piece("c"));
    await output.chunk("db", piece("z\n", Stream.STDERR));
    await output.chunk("web-1", piece("d\ne\nf"));
    expect(stdout()).toBe("db    | y\nweb-1 | abcd\nweb-1 | e\n");
    expect(stderr()).toBe("db    | xz\n");
    await output.endNode("web-1");
    expect(stdout()).toBe("db    | y\nweb-1 | abcd\nweb-1 | e\nweb-1 | f\n");
    await output.end();
    expect(stdout()).toBe("db    | y\nweb-1 | abcd\nweb-1 | e\nweb-1 | f\n");
  });

  it("keeps a multi-byte character split between chunks whole", async () => {
    const { io, stdout } = collectingIo();
    const output = createNodeOutput({ io, prefix: true });
    const bytes = Buffer.from("é\n");
    await output.chunk("n", piece(bytes.subarray(0, 1)));
    await output.chunk("n", piece(bytes.subarray(1)));
    expect(stdout()).toBe("n | é\n");
  });

  it("writes a node's pending line before its gap warning, and names the node in the warning", async () => {
    const { io, stderr } = collectingIo();
    const output = createNodeOutput({ io, prefix: true });
    await output.chunk("n1", piece("head", Stream.STDERR));
    await output.gap("n1", create(OutputGapSchema, { stream: Stream.STDERR, offset: 4n, bytes: 100n }));
    expect(stderr()).toBe("n1 | head\ndrce: n1: 100 bytes of stderr were not kept by the node (from offset 4; it keeps the head and the tail of a stream past --max-output-bytes)\n");
  });

  it("passes bytes through unchanged without the prefix", async () => {
    const { io, stdout } = collectingIo();
    const output = createNodeOutput({ io, prefix: false });
    await output.chunk("a", piece("no "));
    await output.chunk("b", piece("prefix"));
    await output.end();
    expect(stdout()).toBe("no prefix");
  });
});
