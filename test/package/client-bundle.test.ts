import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fromBinary, toBinary, type Message } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { build, type Plugin } from "esbuild";
import { afterAll, describe, expect, it } from "vitest";

/*
 * The client commands' bundle is built with two esbuild plugins of bin/: descriptor-literals.js
 * writes each embedded file descriptor as the object it decodes to, and lazy-builtins.js loads
 * each Node.js built-in at the first read of one of its exports. Each case builds a small
 * bundle with them, as bin/build.js builds dist/drce-client.cjs, and runs it in a node of its
 * own, whose loaded built-ins are its own.
 */

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

interface DescriptorLiterals {
  decodeEmbeddedDescriptor(base64: string): FileDescriptorProto;
  literalOf(value: unknown): string;
  withDescriptorLiterals(source: string): string | undefined;
  descriptorLiterals(): Plugin;
}
interface LazyBuiltins {
  lazyBuiltins(): Plugin;
  lazyBuiltinsBanner: string;
}
const literals = (await import(join(repoRoot, "bin/descriptor-literals.js"))) as DescriptorLiterals;
const builtins = (await import(join(repoRoot, "bin/lazy-builtins.js"))) as LazyBuiltins;

const dir = mkdtempSync(join(tmpdir(), "drce-client-bundle-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Bundles `source` (an entry in the checkout's root) with the client bundle's plugins into a CommonJS file and returns its path. */
async function bundle(name: string, source: string): Promise<string> {
  const entry = join(repoRoot, `.client-bundle-test-${name}-${process.pid}.ts`);
  writeFileSync(entry, source);
  const outfile = join(dir, `${name}.cjs`);
  try {
    await build({ absWorkingDir: repoRoot, entryPoints: [entry], outfile, bundle: true, platform: "node", format: "cjs", target: "node20", logLevel: "silent", plugins: [builtins.lazyBuiltins(), literals.descriptorLiterals()], banner: { js: builtins.lazyBuiltinsBanner } });
  } finally {
    rmSync(entry, { force: true });
  }
  return outfile;
}

/** Runs a bundle in a node of its own and returns its stdout, failing on a non-zero exit. */
function run(file: string): string {
  const child = spawnSync(process.execPath, [file], { encoding: "utf8", timeout: 20_000 });
  expect(child.stderr).toBe("");
  expect(child.status).toBe(0);
  return child.stdout;
}

/** Every embedded descriptor of the checkout's generated code and of protobuf-es's well-known types, by file. */
function embeddedDescriptors(): { file: string; base64: string }[] {
  const files = [
    ...readdirSync(join(repoRoot, "gen/drce/v1")).filter((name) => name.endsWith("_pb.ts")).map((name) => join(repoRoot, "gen/drce/v1", name)),
    ...readdirSync(join(repoRoot, "node_modules/@bufbuild/protobuf/dist/esm/wkt/google/protobuf")).filter((name) => name.endsWith("_pb.js")).map((name) => join(repoRoot, "node_modules/@bufbuild/protobuf/dist/esm/wkt/google/protobuf", name)),
  ];
  return files.flatMap((file) => [...readFileSync(file, "utf8").matchAll(/\bfileDesc\(\s*"([A-Za-z0-9+/=_-]*)"/g)].map((match) => ({ file, base64: match[1] ?? "" })));
}

/** The shape of a decoded message: own fields, and the defaults its prototype holds, all the way down. */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shape);
  if (value instanceof Uint8Array) return { bytes: [...value] };
  if (typeof value === "bigint") return { bigint: String(value) };
  if (typeof value !== "object" || value === null) return value;
  const prototype = Object.getPrototypeOf(value) as object;
  return {
    own: Object.fromEntries(Object.entries(value).map(([key, item]) => [key, shape(item)])),
    defaults: prototype === Object.prototype ? null : Object.fromEntries(Object.entries(prototype)),
  };
}

describe("descriptors decoded at build time", () => {
  const descriptors = embeddedDescriptors();

  it("finds the descriptors of the generated code and of the well-known types", () => {
    const names = descriptors.map(({ base64 }) => literals.decodeEmbeddedDescriptor(base64).name);
    expect(names).toEqual(expect.arrayContaining(["drce/v1/task.proto", "drce/v1/task_service.proto", "drce/v1/node_service.proto", "google/protobuf/any.proto", "google/protobuf/struct.proto"]));
  });

  it("writes each as a literal that is the decoded message: the same own fields, prototypes of defaults and bytes", () => {
    for (const { file, base64 } of descriptors) {
      const decoded = literals.decodeEmbeddedDescriptor(base64);
      const copy = (0, eval)(literals.literalOf(decoded)) as FileDescriptorProto;
      expect(shape(copy), file).toEqual(shape(decoded));
      expect(toBinary(FileDescriptorProtoSchema, copy), file).toEqual(toBinary(FileDescriptorProtoSchema, decoded));
      // JSON names are restored as fileDesc() restores them: the embedded bytes leave them out.
      expect(decoded.messageType.flatMap((message) => message.field).every((field) => field.jsonName !== ""), file).toBe(true);
      // The embedded bytes are the same file: only the JSON names differ.
      const embeddedFile = fromBinary(FileDescriptorProtoSchema, base64Decode(base64));
      expect(embeddedFile.name, file).toBe(copy.name);
      expect(embeddedFile.messageType.map((message) => message.name), file).toEqual(copy.messageType.map((message) => message.name));
    }
  });

  it("writes bytes, 64-bit integers, -0 and shared prototypes as the values they are", () => {
    const prototype = { label: 1, typeName: "" };
    const message = (own: object): object => Object.assign(Object.create(prototype) as object, own);
    const value = { list: [message({ name: "a" }), message({ name: "b", label: 3 })], data: new Uint8Array([0, 255, 7]), big: 2n ** 63n - 1n, zero: -0, nothing: undefined };
    const copy = (0, eval)(literals.literalOf(value)) as typeof value;
    expect(shape(copy)).toEqual(shape(value));
    expect(Object.is(copy.zero, -0)).toBe(true);
    expect(Object.getPrototypeOf(copy.list[0])).toBe(Object.getPrototypeOf(copy.list[1]));
    expect(copy.big).toBe(2n ** 63n - 1n);
  });

  it("leaves a module that embeds no descriptor as it is", () => {
    expect(literals.withDescriptorLiterals('export const x = 1;\n')).toBeUndefined();
    const any = descriptors.find(({ file }) => file.endsWith("any_pb.js"));
    expect(literals.withDescriptorLiterals(`export const f = fileDesc("${any?.base64 ?? ""}");\n`)).toMatch(/^import \{ fileDescFrom as __drceFileDescFrom \} from "drce:file-desc";\n/);
  });

  it("makes registries that encode, decode and print messages exactly as the generated code does, with no reflection of descriptor.proto", async () => {
    const source = `import { create, toBinary, toJsonString, fromBinary } from "@bufbuild/protobuf";
import { TaskService, RunTaskResponseSchema, SubmitTaskRequestSchema } from "./gen/drce/v1/task_service_pb.js";
import { TaskMode, TaskState } from "./gen/drce/v1/task_pb.js";
const request = create(SubmitTaskRequestSchema, { task: { id: "t-1", alias: "build", argv: ["make", "-j4"], env: { A: "1" }, mode: TaskMode.SYNC, timeMaxMs: 1500n, input: new Uint8Array([1, 2, 3]) } });
const response = create(RunTaskResponseSchema, { node: "n1", event: { case: "result", value: { id: "t-1", state: TaskState.FINISHED, exitStatus: 3, fields: { cpu: 0.5 } } } });
const bytes = toBinary(RunTaskResponseSchema, response);
console.log(JSON.stringify({
  request: Buffer.from(toBinary(SubmitTaskRequestSchema, request)).toString("base64"),
  response: Buffer.from(bytes).toString("base64"),
  json: toJsonString(RunTaskResponseSchema, fromBinary(RunTaskResponseSchema, bytes)),
  methods: TaskService.methods.map((method) => method.name + ":" + method.methodKind),
}));
`;
    const file = await bundle("registries", source);
    expect(readFileSync(file, "utf8")).not.toMatch(/\bboot\(\{/);
    const fromBundle = JSON.parse(run(file)) as Record<string, unknown>;
    // The same calls on the generated code as this test process loads it (fileDesc() from the bytes).
    const { create, toBinary: encode, toJsonString, fromBinary: decode } = await import("@bufbuild/protobuf");
    const { TaskService, RunTaskResponseSchema, SubmitTaskRequestSchema } = await import("../../gen/drce/v1/task_service_pb.js");
    const { TaskMode, TaskState } = await import("../../gen/drce/v1/task_pb.js");
    const request = create(SubmitTaskRequestSchema, { task: { id: "t-1", alias: "build", argv: ["make", "-j4"], env: { A: "1" }, mode: TaskMode.SYNC, timeMaxMs: 1500n, input: new Uint8Array([1, 2, 3]) } });
    const response: Message = create(RunTaskResponseSchema, { node: "n1", event: { case: "result", value: { id: "t-1", state: TaskState.FINISHED, exitStatus: 3, fields: { cpu: 0.5 } } } });
    const bytes = encode(RunTaskResponseSchema, response as never);
    expect(fromBundle).toEqual({
      request: Buffer.from(encode(SubmitTaskRequestSchema, request)).toString("base64"),
      response: Buffer.from(bytes).toString("base64"),
      json: toJsonString(RunTaskResponseSchema, decode(RunTaskResponseSchema, bytes)),
      methods: TaskService.methods.map((method) => `${method.name}:${method.methodKind}`),
    });
  });
});

describe("built-ins loaded at their first use", () => {
  const loaded = "const loaded = (name) => process.moduleLoadList.includes(`NativeModule ${name}`);";

  it("loads none of tls, zlib and https until one of their exports is read, then the real module", async () => {
    const file = await bundle("lazy", `import tls from "node:tls";
import * as zlib from "node:zlib";
import { Agent } from "node:https";
${loaded}
const before = { tls: loaded("tls"), zlib: loaded("zlib"), https: loaded("https") };
const gzipped = zlib.gzipSync("drce");
const after = { tls: loaded("tls"), zlib: loaded("zlib"), https: loaded("https") };
console.log(JSON.stringify({ before, after, roundTrip: zlib.gunzipSync(gzipped).toString(), ciphers: tls.getCiphers().length > 0, agent: typeof Agent, afterAll: { tls: loaded("tls"), https: loaded("https") } }));
`);
    expect(JSON.parse(run(file))).toEqual({ before: { tls: false, zlib: false, https: false }, after: { tls: false, zlib: true, https: false }, roundTrip: "drce", ciphers: true, agent: "function", afterAll: { tls: true, https: true } });
  });

  it("requires a built-in that is itself a function as it is, so that it can be extended", async () => {
    const file = await bundle("events", `import EventEmitter, { once } from "node:events";
class Bell extends EventEmitter {}
const bell = new Bell();
setTimeout(() => bell.emit("ring", 7), 1);
void once(bell, "ring").then(([value]) => console.log(JSON.stringify({ value, isEmitter: bell instanceof EventEmitter })));
`);
    expect(JSON.parse(run(file))).toEqual({ value: 7, isEmitter: true });
  });

  it("leaves zlib unloaded by Connect's Node.js transport until a message is compressed, and then compresses", async () => {
    const file = await bundle("compression", `import { compressionGzip, createConnectTransport } from "@connectrpc/connect-node";
${loaded}
createConnectTransport({ baseUrl: "http://127.0.0.1:1", httpVersion: "2", acceptCompression: [] });
const before = loaded("zlib");
void compressionGzip.compress(new Uint8Array([1, 2, 3])).then((packed) => compressionGzip.decompress(packed, 100)).then((bytes) => console.log(JSON.stringify({ before, after: loaded("zlib"), bytes: [...bytes] })));
`);
    expect(JSON.parse(run(file))).toEqual({ before: false, after: true, bytes: [1, 2, 3] });
  });

  it("refuses a node: name that is not a built-in, at build time", async () => {
    await expect(bundle("unknown", 'import x from "node:no-such-module";\nconsole.log(x);\n')).rejects.toThrow(/node:no-such-module is not a built-in module of this Node\.js/);
  });
});
