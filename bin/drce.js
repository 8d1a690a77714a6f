#!/usr/bin/env node
// The drce command. Installed from the package, which ships the compiled bundle
// (dist/drce.mjs, made by `npm run build` before packing) and no sources, it runs the bundle
// with the production dependencies alone. In a checkout it runs the bundle when it is newer
// than every source it was made from; otherwise it runs the TypeScript sources through
// tsx's loader (a dev dependency), so an edited source is never shadowed by a stale bundle.
// Either way in this process, so that signals reach drce itself.
import { existsSync, readdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = new URL("../", import.meta.url);
const bundle = new URL("dist/drce.mjs", root);
const sources = new URL("src/main.ts", root);

/** Newest modification time of the files below a directory, in ms (0 when it is missing). */
function newest(dir) {
  let latest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true, recursive: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    latest = Math.max(latest, statSync(`${entry.parentPath ?? entry.path}/${entry.name}`).mtimeMs);
  }
  return latest;
}

function bundleIsFresh() {
  let built;
  try {
    built = statSync(bundle).mtimeMs;
  } catch {
    return false;
  }
  const sources = ["src", "gen"].map((dir) => newest(fileURLToPath(new URL(dir, root))));
  sources.push(statSync(new URL("package.json", root)).mtimeMs, statSync(new URL("tsconfig.json", root)).mtimeMs);
  return sources.every((mtime) => mtime <= built);
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
