#!/usr/bin/env node
// Compiles the drce command (src/main.ts and what it imports) into an ES module,
// dist/drce.mjs, and the spawner a node forks to start its commands into another,
// dist/spawner-main.mjs, and the client library (`drce/client`, src/client/index.ts) into a
// third, dist/client.mjs. A node started from it carries no TypeScript loader: less memory, a
// faster start, and cheaper process spawns (fork() costs grow with the size of the process
// that forks). The library's type declarations are emitted by tsc (`npm run build:types`,
// tsconfig.types.json) before packing.
//
// The command's start is what a user waits for at each `drce run`, so its build differs from
// the library's in two ways. What only `drce serve` needs (the server, ZeroMQ, SSH, metrics,
// logging) is split into chunks beside it, loaded when it serves, so that a client command
// does not load them; and Connect and protobuf, which every command loads, are compiled in
// (resolving their hundred-odd modules at each start cost a third of a client command's CPU).
// The other packages stay imports of node_modules (zeromq and ssh2 carry native code; a new
// package with native code goes in that list too). Both together: `drce --version` takes a
// third of the CPU it took with every package external and nothing split. The library keeps
// every package external, so that its users share one copy of Connect and protobuf with it.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
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
const command = await build({
  ...common,
  entryPoints: [
    { in: "src/main.ts", out: "drce" },
    { in: "src/executor/spawner-main.ts", out: "spawner-main" },
  ],
  splitting: true,
  external: ["zeromq", "ssh2", "systeminformation", "pino", "prom-client"],
});
const library = await build({
  ...common,
  entryPoints: [{ in: "src/client/index.ts", out: "client" }],
  packages: "external",
});
// Chunks of earlier builds are named by other hashes; only this build's are kept.
const outputs = new Set([command, library].flatMap((result) => Object.keys(result.metafile.outputs).map((path) => basename(path))));
for (const name of readdirSync(new URL("../dist", import.meta.url))) {
  if (name.endsWith(".mjs") && !outputs.has(name)) rmSync(new URL(`../dist/${name}`, import.meta.url), { force: true });
}
// The native spawner is compiled from its source on the machine a node runs on (where it has
// a C compiler; src/executor/native-spawner-build.ts): the source ships beside the bundles.
mkdirSync(new URL("../dist/native", import.meta.url), { recursive: true });
copyFileSync(new URL("../src/executor/native/spawner.c", import.meta.url), new URL("../dist/native/spawner.c", import.meta.url));
// The web console is compiled by a module of its own (bin/build-ui.js).
const { buildConsole } = await import("./build-ui.js");
await buildConsole();
