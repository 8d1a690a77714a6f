#!/usr/bin/env node
// The drce command, as the package installs it. A CommonJS script, so that a client command
// never starts Node.js's ES module loader (an empty .mjs entry costs about 13 ms of CPU more
// than an empty .cjs one): it requires the compiled dispatcher, dist/drce.cjs, which requires
// the client commands' bundle; only `drce serve` (and what else needs the server's code)
// reaches the ES modules of dist/drce.mjs, through import(). Installed from the package, which
// ships the compiled bundles (made by `npm run build` before packing) and no sources, it runs
// the bundle with the production dependencies alone. In a checkout it runs the bundle while it
// is fresh; otherwise it runs the TypeScript sources through tsx's loader (a dev dependency),
// so an edited source is never shadowed by a stale bundle. Either way in this process, so
// that signals reach drce itself. bin/drce.js forwards here, for whoever runs it by that name.
//
// Fresh means: every file the build recorded in dist/drce-inputs.json is still there and
// none was modified after the build began. The build lists the sources its bundles were made
// from, package.json, tsconfig.json, its own scripts in bin/ and node_modules/.package-lock.json
// (npm rewrites it at each install), as { builtAt: ms, client: [paths], serve: [paths] }, paths
// relative to the checkout. A client command checks the "client" files (what it loads), `drce
// serve` those of "serve" too; without the list the bundle is not fresh. A source file added
// since is not checked: it can only change the command through an import from a listed file,
// which is then newer. Statting a list costs a third of the walk of src/ and gen/ it replaces.
"use strict";
const { existsSync, readFileSync, statSync } = require("node:fs");
const { join } = require("node:path");

const root = join(__dirname, "..");
const bundle = join(root, "dist", "drce.cjs");
const sources = join(root, "src", "main.ts");

function bundleIsFresh() {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(root, "dist", "drce-inputs.json"), "utf8"));
  } catch {
    return false;
  }
  const { builtAt, client, serve } = manifest;
  if (typeof builtAt !== "number" || !Array.isArray(client) || !Array.isArray(serve)) return false;
  // Any word "serve" counts, even an argument of another command: checking more is only slower.
  const lists = process.argv.includes("serve") ? [client, serve] : [client];
  const base = `${root}/`;
  for (const list of lists) {
    for (const path of list) {
      const stats = statSync(`${base}${path}`, { throwIfNoEntry: false });
      if (stats === undefined || stats.mtimeMs > builtAt) return false;
    }
  }
  return existsSync(bundle);
}

/** The sources through tsx: the slow path of a checkout whose bundle is stale, where an ES module loader is no cost worth saving. */
async function runSources() {
  const { pathToFileURL } = require("node:url");
  const { register } = await import("tsx/esm/api");
  register({ tsconfig: join(root, "tsconfig.json") });
  await import(pathToFileURL(sources).href);
}

if (!existsSync(sources)) {
  if (!existsSync(bundle)) {
    process.stderr.write(`drce: ${bundle} is missing: this copy of drce was packed without its build (npm pack runs it)\n`);
    process.exit(1);
  }
  require(bundle);
} else if (bundleIsFresh()) {
  require(bundle);
} else {
  runSources().catch((error) => {
    process.stderr.write(`drce: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  });
}
