#!/usr/bin/env node
// Compiles the drce command (src/main.ts and what it imports) into one ES module,
// dist/drce.mjs, and the spawner a node forks to start its commands into another,
// dist/spawner-main.mjs, and the client library (`drce/client`, src/client/index.ts) into a
// third, dist/client.mjs, with their packages left as imports of node_modules. A node started from it
// carries no TypeScript loader: less memory, a faster start, and cheaper process spawns
// (fork() costs grow with the size of the process that forks). The library's type
// declarations are emitted by tsc (`npm run build:types`, tsconfig.types.json) before packing.
import { build } from "esbuild";
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
// Before packing, dist/ is made anew: a file left by an older build must not ship.
if (process.argv.includes("--clean")) rmSync(new URL("../dist", import.meta.url), { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: [
    { in: "src/main.ts", out: "drce" },
    { in: "src/executor/spawner-main.ts", out: "spawner-main" },
    { in: "src/client/index.ts", out: "client" },
  ],
  outdir: "dist",
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  tsconfig: "tsconfig.json",
  logLevel: "warning",
});
