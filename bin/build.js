#!/usr/bin/env node
// Compiles the drce command (src/main.ts and what it imports) into one ES module,
// dist/drce.mjs, with its packages left as imports of node_modules. A node started from it
// carries no TypeScript loader: less memory, a faster start, and cheaper process spawns
// (fork() costs grow with the size of the process that forks).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
await build({
  absWorkingDir: root,
  entryPoints: ["src/main.ts"],
  outfile: "dist/drce.mjs",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  tsconfig: "tsconfig.json",
  logLevel: "warning",
});
