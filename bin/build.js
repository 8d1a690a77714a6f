#!/usr/bin/env node
// Compiles the drce command (src/main.ts and what it imports) into an ES module,
// dist/drce.mjs, and the spawner a node forks to start its commands into another,
// dist/spawner-main.mjs. Connect and protobuf, which every command loads, are compiled in
// (resolving their hundred-odd modules at each start cost a third of a client command's CPU);
// the other packages stay imports of node_modules (zeromq and ssh2 carry native code; a new
// package with native code goes in this list too). A node started from it
// carries no TypeScript loader: less memory, a faster start, and cheaper process spawns
// (fork() costs grow with the size of the process that forks). What only `drce serve` needs
// (the server, ZeroMQ, SSH, metrics, logging) is split into chunks loaded when it serves, so
// that a client command does not load them. Both together: `drce --version` takes a third of
// the CPU it took with every package external and nothing split.
import { build } from "esbuild";
import { readdirSync, rmSync } from "node:fs";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const result = await build({
  absWorkingDir: root,
  entryPoints: [
    { in: "src/main.ts", out: "drce" },
    { in: "src/executor/spawner-main.ts", out: "spawner-main" },
  ],
  outdir: "dist",
  outExtension: { ".js": ".mjs" },
  bundle: true,
  splitting: true,
  metafile: true,
  platform: "node",
  format: "esm",
  target: "node20",
  external: ["zeromq", "ssh2", "systeminformation", "pino", "prom-client"],
  tsconfig: "tsconfig.json",
  logLevel: "warning",
});
// Chunks of earlier builds are named by other hashes; only this build's are kept.
const outputs = new Set(Object.keys(result.metafile.outputs).map((path) => basename(path)));
for (const name of readdirSync(new URL("../dist", import.meta.url))) {
  if (name.endsWith(".mjs") && !outputs.has(name)) rmSync(new URL(`../dist/${name}`, import.meta.url), { force: true });
}
