#!/usr/bin/env node
// Compiles the drce command (src/main.ts and what it imports) into a CommonJS dispatcher,
// dist/drce.cjs, with what only `drce serve` loads in ES modules beside it (dist/drce.mjs and
// its chunks), and the spawner a node forks to start its commands into another,
// dist/spawner-main.mjs, and the client library (`drce/client`, src/client/index.ts) into a
// third, dist/client.mjs. A node started from it carries no TypeScript loader: less memory, a
// faster start, and cheaper process spawns (fork() costs grow with the size of the process
// that forks). The library's type declarations are emitted by tsc (`npm run build:types`,
// tsconfig.types.json) before packing.
//
// The command's start is what a user waits for at each `drce run`, so its build differs from
// the library's. dist/drce.cjs is a dispatcher that loads a command's code when it runs, a
// script so that no client command starts the ES module loader; what only `drce serve` needs
// (the server, ZeroMQ, SSH, metrics, logging) is dist/drce.mjs split into chunks, imported
// when it serves; the client commands are one script of their own,
// dist/drce-client.cjs, loaded with a V8 code cache; and Connect and protobuf are compiled in
// (resolving their hundred-odd modules at each start cost a third of a client command's CPU).
// It also writes dist/drce-inputs.json, by which bin/drce.cjs tells whether dist/ is fresh.
// The other packages stay imports of node_modules (zeromq and ssh2 carry native code; a new
// package with native code goes in that list too). The split and the compiled-in packages
// first made `drce --version` take a third of the CPU it took with every package external. The library keeps
// every package external, so that its users share one copy of Connect and protobuf with it.
import { build } from "esbuild";
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { writeClientLoader } from "./client-code-cache.js";
import { descriptorLiterals } from "./descriptor-literals.js";
import { lazyBuiltins, lazyBuiltinsBanner } from "./lazy-builtins.js";

const root = fileURLToPath(new URL("..", import.meta.url));
// Before anything is read: a source saved while the build runs is newer than the build.
const builtAt = Date.now();
// Before packing, dist/ is made anew: a file left by an older build must not ship.
if (process.argv.includes("--clean")) rmSync(new URL("../dist", import.meta.url), { recursive: true, force: true });
const common = {
  absWorkingDir: root,
  outdir: "dist",
  outExtension: { ".js": ".mjs" },
  bundle: true,
  metafile: true,
  platform: "node",
  format: "esm",
  target: "node20",
  tsconfig: "tsconfig.json",
  logLevel: "warning",
};
const serverPackages = ["zeromq", "ssh2", "systeminformation", "pino", "prom-client"];
// What only `drce serve` loads, as one ES module entry, dist/drce.mjs: the serve command and
// the failure report of the same build (whose error classes the server's code throws).
const serveEntry = {
  name: "serve-entry",
  setup(plugin) {
    plugin.onResolve({ filter: /^drce:serve-entry$/ }, () => ({ path: "serve-entry", namespace: "drce-entry" }));
    plugin.onLoad({ filter: /.*/, namespace: "drce-entry" }, () => ({
      contents: 'export { serve } from "./src/cli/serve.ts";\nexport { reportFailure } from "./src/cli/report-failure.ts";\n',
      resolveDir: root,
      loader: "js",
    }));
  },
};
const command = await build({
  ...common,
  entryPoints: [
    { in: "drce:serve-entry", out: "drce" },
    { in: "src/executor/spawner-main.ts", out: "spawner-main" },
  ],
  splitting: true,
  external: serverPackages,
  plugins: [serveEntry],
});
// The dispatcher, src/main.ts and its command table, as CommonJS, dist/drce.cjs, which
// bin/drce.cjs requires: a client command starts no ES module loader. The client commands
// come from their loader by require() (an import() would start the loader); serve and its
// failure report from dist/drce.mjs by import(), the one way to an ES module.
const dispatcherLinks = {
  name: "dispatcher-links",
  setup(plugin) {
    plugin.onResolve({ filter: /\/(client|run)-commands\.js$/ }, (args) => ({ path: args.path.endsWith("/run-commands.js") ? "run" : "client", namespace: "drce-client" }));
    plugin.onLoad({ filter: /.*/, namespace: "drce-client" }, (args) => ({ contents: `module.exports = require("./drce-${args.path}-loader.cjs");\n`, loader: "js" }));
    plugin.onResolve({ filter: /^\.\/drce-(client|run)-loader\.cjs$/ }, (args) => ({ path: args.path, external: true }));
    plugin.onResolve({ filter: /^\.\/(serve|report-failure)\.js$/ }, (args) => (args.importer.endsWith("/src/cli/index.ts") ? { path: "./drce.mjs", external: true } : undefined));
  },
};
const dispatcher = await build({
  ...common,
  entryPoints: [{ in: "src/main.ts", out: "drce" }],
  format: "cjs",
  outExtension: { ".js": ".cjs" },
  external: serverPackages,
  // version.ts reads package.json beside dist/ through import.meta.url, which CommonJS has not.
  define: { "import.meta.url": "__drceModuleUrl" },
  banner: { js: '"use strict";\nconst __drceModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
  plugins: [dispatcherLinks],
});
// One file, not split: a client command's start reads it and nothing else (each further
// chunk is a module Node.js resolves, reads and links: half a millisecond of CPU apiece, and
// chunks shared with the server's code made eighteen). Its commands' modules are evaluated
// only when they run, as esbuild compiles a dynamic import within one file. A script, not
// an ES module, so that it is loaded with a V8 code cache (see client-code-cache.js).
const clientBundle = {
  ...common,
  format: "cjs",
  outExtension: { ".js": ".cjs" },
  external: serverPackages,
  // Built-ins are loaded when first used (lazy-builtins.js); the descriptors come decoded (descriptor-literals.js).
  plugins: [lazyBuiltins(), descriptorLiterals()],
  banner: { js: lazyBuiltinsBanner },
};
const client = await build({ ...clientBundle, entryPoints: [{ in: "src/cli/client-commands.ts", out: "drce-client" }] });
// `drce run` (the most used command, and what `drce run --all` runs) has a file and a code
// cache of its own, dist/drce-run.cjs: a run reads, deserialises and evaluates none of the
// other commands' code, nor node_service.proto's descriptor (BENCHMARKS.md, "CLI start-up").
const run = await build({ ...clientBundle, entryPoints: [{ in: "src/cli/run-commands.ts", out: "drce-run" }] });
const clientLoader = [...writeClientLoader(new URL("../dist/", import.meta.url), "drce-client"), ...writeClientLoader(new URL("../dist/", import.meta.url), "drce-run")];
const library = await build({
  ...common,
  entryPoints: [{ in: "src/client/index.ts", out: "client" }],
  packages: "external",
});
// What bin/drce.cjs checks to tell whether the command's bundle is fresh, instead of walking
// src/ and gen/: the files the command's bundles were made from (in node_modules, npm's own
// record of what it installed stands for the packages: npm gives the files it unpacks the
// times in their tarballs), those its build reads, and when the build began. A client
// command checks the files of what it loads ("client"); serve those of the rest too.
const clientInputs = inputsOf(dispatcher, () => true);
for (const input of inputsOf(client, () => true)) clientInputs.add(input);
for (const input of inputsOf(run, () => true)) clientInputs.add(input);
const serveInputs = inputsOf(command, () => true);
// A node compiles the native spawner from the copy in dist/native/ (below): a changed source makes serve's bundle stale.
serveInputs.add("src/executor/native/spawner.c");
const buildInputs = ["package.json", "tsconfig.json", "bin/build.js", "bin/client-code-cache.js", "bin/lazy-builtins.js", "bin/descriptor-literals.js", ...(existsSync(new URL("../node_modules/.package-lock.json", import.meta.url)) ? ["node_modules/.package-lock.json"] : [])];
for (const input of buildInputs) clientInputs.add(input);
const manifest = { builtAt, client: [...clientInputs].sort(), serve: [...serveInputs].filter((input) => !clientInputs.has(input)).sort() };
writeFileSync(new URL("../dist/drce-inputs.json", import.meta.url), `${JSON.stringify(manifest, null, 1)}\n`);

/** The source files (node_modules apart) of a build's outputs that `pick` selects. */
function inputsOf(result, pick) {
  const inputs = new Set();
  for (const [output, meta] of Object.entries(result.metafile.outputs)) {
    if (!pick(output)) continue;
    for (const input of Object.keys(meta.inputs)) if (!input.startsWith("node_modules/") && !input.includes(":")) inputs.add(input);
  }
  return inputs;
}

// Chunks of earlier builds are named by other hashes; only this build's are kept.
const outputs = new Set([command, dispatcher, client, run, library].flatMap((result) => Object.keys(result.metafile.outputs).map((path) => basename(path))));
for (const name of clientLoader) outputs.add(name);
for (const name of readdirSync(new URL("../dist", import.meta.url))) {
  if (/\.(mjs|cjs|v8cache)$/.test(name) && !outputs.has(name)) rmSync(new URL(`../dist/${name}`, import.meta.url), { force: true });
}
// The native spawner is compiled from its source on the machine a node runs on (where it has
// a C compiler; src/executor/native-spawner-build.ts): the source ships beside the bundles.
mkdirSync(new URL("../dist/native", import.meta.url), { recursive: true });
copyFileSync(new URL("../src/executor/native/spawner.c", import.meta.url), new URL("../dist/native/spawner.c", import.meta.url));
// The web console is compiled by a module of its own (bin/build-ui.js).
const { buildConsole } = await import("./build-ui.js");
await buildConsole();
