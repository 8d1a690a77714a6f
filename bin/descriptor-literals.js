// The file descriptors of the client commands' bundle, decoded at build time. Code made by
// protoc-gen-es embeds each .proto file's descriptor as base64 of its FileDescriptorProto,
// which @bufbuild/protobuf decodes when the module is evaluated, with a reflection of
// descriptor.proto itself that it builds first (boot()): 22-30 ms of CPU at each start of a
// client command, for the same bytes every time. This plugin decodes each embedded
// descriptor once, when the bundle is built, with the same runtime, and writes the decoded
// FileDescriptorProto into the module as an object literal (the same own fields, the same
// prototypes of defaults that fromBinary() gives a proto2 message, so that field presence
// reads alike); at start the registry is made from it as fileDesc() makes it from the bytes.
// descriptor.proto's reflection is then built only by code that uses its messages, which a
// client command does not. The messages, their field numbers and the wire stay those of the
// generated code; only how its descriptors are made at start changes.
import { fromBinary } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const protobufEsm = new URL("../node_modules/@bufbuild/protobuf/dist/esm/", import.meta.url);
// fileDesc() restores the JSON names protoc-gen-es leaves out of the embedded bytes; the same
// function of the same runtime does it here (it is not exported by the package's entry points).
const { restoreJsonNames } = await import(new URL("codegenv2/restore-json-names.js", protobufEsm).href);

/** The modules whose embedded descriptors are decoded: generated code and protobuf-es's well-known types. */
// (descriptor.proto's own module boots from an object literal already, with no fileDesc() call.)
const generatedFile = /(^|[\\/])(gen[\\/].*_pb\.ts|@bufbuild[\\/]protobuf[\\/]dist[\\/]esm[\\/]wkt[\\/]google[\\/]protobuf[\\/].*_pb\.js)$/;
const embedded = /\bfileDesc\(\s*"([A-Za-z0-9+/=_-]*)"/g;
const helper = "drce:file-desc";

/**
 * The decoded FileDescriptorProto of one embedded descriptor, with its JSON names restored,
 * as fileDesc() holds it before it makes the registry.
 */
export function decodeEmbeddedDescriptor(base64) {
  const root = fromBinary(FileDescriptorProtoSchema, base64Decode(base64));
  root.messageType.forEach(restoreJsonNames);
  return root;
}

/**
 * A JavaScript expression that evaluates to a copy of `value`: a decoded message with its
 * own fields, its prototype of defaults (one object per prototype, shared as create() shares
 * it), and its nested messages, lists, bytes and 64-bit integers.
 */
export function literalOf(value) {
  const prototypes = new Map();
  const body = expression(value, prototypes);
  if (prototypes.size === 0) return body;
  const declarations = [...prototypes.values()].map(({ name, source }) => `${name} = ${source}`).join(", ");
  // Pure, as the call it stands in for: a descriptor no code reads is left out of the bundle.
  return `/* @__PURE__ */ (() => { const m = (p, o) => Object.assign(Object.create(p), o), ${declarations}; return ${body}; })()`;
}

function expression(value, prototypes) {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return String(value);
    case "number":
      return Object.is(value, -0) ? "-0" : Number.isFinite(value) ? String(value) : `Number(${JSON.stringify(String(value))})`;
    case "bigint":
      return `${value}n`;
    case "undefined":
      return "undefined";
    case "object":
      break;
    default:
      throw new Error(`descriptor-literals: a ${typeof value} in a decoded descriptor`);
  }
  if (value === null) return "null";
  if (value instanceof Uint8Array) return `/* @__PURE__ */ new Uint8Array([${value.join(",")}])`;
  if (Array.isArray(value)) return `[${value.map((item) => expression(item, prototypes)).join(",")}]`;
  const own = `{${Object.keys(value).map((key) => `${JSON.stringify(key)}:${expression(value[key], prototypes)}`).join(",")}}`;
  const prototype = Object.getPrototypeOf(value);
  if (prototype === Object.prototype) return own;
  if (Object.getPrototypeOf(prototype) !== Object.prototype) throw new Error("descriptor-literals: a decoded message with a deeper prototype chain");
  let shared = prototypes.get(prototype);
  if (shared === undefined) {
    shared = { name: `p${prototypes.size}`, source: expression({ ...prototype }, prototypes) };
    prototypes.set(prototype, shared);
  }
  return `m(${shared.name},${own})`;
}

/**
 * The source of a generated module with each `fileDesc("...")` replaced by the registry
 * made from its decoded literal; undefined when the module embeds none.
 */
export function withDescriptorLiterals(source) {
  let found = false;
  const replaced = source.replace(embedded, (_call, base64) => {
    found = true;
    return `__drceFileDescFrom(${literalOf(decodeEmbeddedDescriptor(base64))}`;
  });
  return found ? `import { fileDescFrom as __drceFileDescFrom } from "${helper}";\n${replaced}` : undefined;
}

/**
 * What fileDesc() does once the bytes are decoded: the file's dependencies named from the
 * imports, and the registry that makes its descriptors. The registry module is imported by
 * its path, as protobuf-es's own modules import it: one instance in the bundle, and no cycle
 * through the package's entry point (which imports the well-known types).
 */
const helperSource = `import { createEmbeddedFileRegistry } from ${JSON.stringify(fileURLToPath(new URL("registry.js", protobufEsm)))};
export function fileDescFrom(root, imports) {
  root.dependency = imports?.map((file) => file.proto.name) ?? [];
  return createEmbeddedFileRegistry(root, (name) => imports?.find((file) => file.proto.name === name)).getFile(root.name);
}
`;

/** The esbuild plugin: see the file's comment. */
export function descriptorLiterals() {
  return {
    name: "descriptor-literals",
    setup(plugin) {
      plugin.onResolve({ filter: /^drce:file-desc$/ }, () => ({ path: helper, namespace: "drce" }));
      plugin.onLoad({ filter: /.*/, namespace: "drce" }, () => ({ contents: helperSource, loader: "js", resolveDir: fileURLToPath(protobufEsm) }));
      plugin.onLoad({ filter: generatedFile }, (args) => {
        const contents = withDescriptorLiterals(readFileSync(args.path, "utf8"));
        if (contents === undefined) return undefined;
        return { contents, loader: args.path.endsWith(".ts") ? "ts" : "js" };
      });
    },
  };
}
