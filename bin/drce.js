#!/usr/bin/env node
// The drce command. Installed from the package, which ships the compiled bundle
// (dist/drce.mjs, made by `npm run build` before packing) and no sources, it runs the bundle
// with the production dependencies alone. In a checkout it runs the bundle while it is
// fresh; otherwise it runs the TypeScript sources through tsx's loader (a dev dependency),
// so an edited source is never shadowed by a stale bundle. Either way in this process, so
// that signals reach drce itself.
//
// Fresh means: every file the build recorded in dist/drce-inputs.json is still there and
// none was modified after the build began. The build lists the sources its bundles were made
// from, package.json, tsconfig.json, bin/build.js and node_modules/.package-lock.json (npm
// rewrites it at each install), as { builtAt: ms, client: [paths], serve: [paths] }, paths
// relative to the checkout. A client command checks the "client" files (what it loads: 55
// files), `drce serve` those of "serve" too; without the list the bundle is not fresh. A
// source file added since is not checked: it can only change the command through an import
// from a listed file, which is then newer. Statting a list costs a third of the walk of src/
// and gen/ it replaces (0.8-1.9 ms of CPU against 2.2-6 ms for the same 207 files).
import { existsSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = new URL("../", import.meta.url);
const bundle = new URL("dist/drce.mjs", root);
const sources = new URL("src/main.ts", root);

function bundleIsFresh() {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(new URL("dist/drce-inputs.json", root), "utf8"));
  } catch {
    return false;
  }
  const { builtAt, client, serve } = manifest;
  if (typeof builtAt !== "number" || !Array.isArray(client) || !Array.isArray(serve)) return false;
  // Any word "serve" counts, even an argument of another command: checking more is only slower.
  const lists = process.argv.includes("serve") ? [client, serve] : [client];
  const base = fileURLToPath(root);
  for (const list of lists) {
    for (const path of list) {
      const stats = statSync(`${base}${path}`, { throwIfNoEntry: false });
      if (stats === undefined || stats.mtimeMs > builtAt) return false;
    }
  }
  return existsSync(bundle);
}

if (!existsSync(sources)) {
  if (!existsSync(bundle)) {
    process.stderr.write(`drce: ${fileURLToPath(bundle)} is missing: this copy of drce was packed without its build (npm pack runs it)\n`);
    process.exit(1);
  }
  await import(bundle.href);
} else if (bundleIsFresh()) {
  await import(bundle.href);
} else {
  const { register } = await import("tsx/esm/api");
  register({ tsconfig: fileURLToPath(new URL("tsconfig.json", root)) });
  await import(new URL("src/main.ts", root).href);
}
