// The client commands' bundle with a V8 code cache. Node.js 20 keeps no compiled code of an
// ES module between runs (module.enableCompileCache() comes with 22.1), so the client bundle
// is built as a script, dist/drce-client.cjs, and loaded by dist/drce-client.mjs through
// vm.Script with the bytecode the build saved after running it once: the functions a client
// command runs are not compiled again at each start. The cache is named by a hash of the
// bundle (V8 checks only a cached script's length), and V8 refuses one made by another
// Node.js version or with other flags: the bundle is then compiled as if there were none.
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";

/**
 * Writes the loader of the client bundle at `dist` (a directory URL) beside it, then the
 * code cache, made by a node that loads the bundle and the `run` command's module.
 */
export function writeClientLoader(dist) {
  const bundle = new URL("drce-client.cjs", dist);
  const hash = createHash("sha256").update(readFileSync(bundle)).digest("hex").slice(0, 16);
  const cacheName = `drce-client-${hash}.v8cache`;
  writeFileSync(new URL("drce-client.mjs", dist), loaderSource(cacheName));
  const made = spawnSync(process.execPath, ["--input-type=module", "-e", `const m = await import(${JSON.stringify(new URL("drce-client.mjs", dist).href)}); await m.clientCommands.run(); m.writeCodeCache();`], { stdio: ["ignore", "inherit", "inherit"] });
  // Without a cache the bundle still runs: it is compiled at each start, as an ES module is.
  if (made.status !== 0) rmSync(new URL(cacheName, dist), { force: true });
  return ["drce-client.mjs", cacheName];
}

function loaderSource(cacheName) {
  return `// Made by bin/build.js (bin/client-code-cache.js): loads drce-client.cjs with its V8 code cache.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import vm from "node:vm";

const file = fileURLToPath(new URL("drce-client.cjs", import.meta.url));
const cacheFile = new URL(${JSON.stringify(cacheName)}, import.meta.url);
let cachedData;
try {
  cachedData = readFileSync(cacheFile);
} catch {
  // No cache (a build that could not make one): the bundle is compiled as usual.
}
const script = new vm.Script(\`(function (exports, require, module, __filename, __dirname) {\${readFileSync(file, "utf8")}\\n})\`, { filename: file, ...(cachedData === undefined ? {} : { cachedData }) });
const module = { exports: {} };
script.runInThisContext()(module.exports, createRequire(file), module, file, fileURLToPath(new URL(".", import.meta.url)));

export const { clientCommands, completionCommand, completionUsage, reportFailure } = module.exports;

/** Saves the bytecode compiled so far (the build calls it once the bundle has run). */
export function writeCodeCache() {
  writeFileSync(cacheFile, script.createCachedData());
}
`;
}
