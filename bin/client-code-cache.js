// The client commands' bundle with a V8 code cache. Node.js 20 keeps no compiled code of an
// ES module between runs (module.enableCompileCache() comes with 22.1), so the client bundle
// is built as a script, dist/drce-client.cjs, and loaded by dist/drce-client-loader.cjs through
// vm.Script with the bytecode the build saved after running it once: the functions a client
// command runs are not compiled again at each start. The cache is named by a hash of the
// bundle (V8 checks only a cached script's length), and V8 refuses one made by another
// Node.js version or with other flags: the bundle is then compiled as if there were none.
//
// The cache is saved after a whole `drce run -- true` (makeCodeCache below), against a small
// server of this file that answers as a node does, so that it holds the bytecode of the call
// too (Connect's client, the transport, the run's output and end), not only of the modules'
// evaluation: functions V8 compiles lazily were otherwise compiled at each run.
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";

/**
 * Writes the loader of a client bundle, `${name}.cjs` at `dist` (a directory URL), beside it
 * as `${name}-loader.cjs`, then the code cache, made by a node that loads the bundle and runs
 * its `run` command. Returns the names of the files written.
 */
export function writeClientLoader(dist, name) {
  const bundle = new URL(`${name}.cjs`, dist);
  const hash = createHash("sha256").update(readFileSync(bundle)).digest("hex").slice(0, 16);
  const cacheName = `${name}-${hash}.v8cache`;
  const loaderName = `${name}-loader.cjs`;
  writeFileSync(new URL(loaderName, dist), loaderSource(`${name}.cjs`, cacheName));
  const made = spawnSync(process.execPath, ["--input-type=module", "-e", `const { makeCodeCache } = await import(${JSON.stringify(import.meta.url)}); await makeCodeCache(${JSON.stringify(new URL(loaderName, dist).href)});`], { stdio: ["ignore", "inherit", "inherit"] });
  // Without a cache the bundle still runs: it is compiled at each start, as an ES module is.
  if (made.status !== 0) rmSync(new URL(cacheName, dist), { force: true });
  return [loaderName, cacheName];
}

/**
 * Loads the client bundle, runs `drce run -- true` with it against a server that answers as
 * a node does (accepted, one line of output, finished with exit 0), and saves the code
 * cache. A run that fails still leaves the cache of what it compiled.
 */
export async function makeCodeCache(loaderUrl) {
  const loader = (await import(loaderUrl)).default;
  // A run that waits for something this server never sends must not hold the build up.
  setTimeout(() => {
    loader.writeCodeCache();
    process.exit(0);
  }, 20_000).unref();
  const http2 = await import("node:http2");
  const { Readable, Writable } = await import("node:stream");
  const server = http2.createServer();
  let inputDone;
  const inputEnded = new Promise((resolve) => (inputDone = resolve));
  server.on("stream", (stream, headers) => {
    const path = headers[":path"];
    stream.on("error", () => undefined); // the run may end its calls first; the cache is what counts
    if (path === "/drce.v1.TaskService/SendTaskInput") {
      stream.resume();
      stream.on("end", () => {
        stream.respond({ ":status": 200, "content-type": "application/connect+proto" });
        stream.end(Buffer.concat([envelope(0, Buffer.alloc(0)), envelope(2, Buffer.from("{}"))]));
        inputDone();
      });
      return;
    }
    stream.resume();
    stream.respond({ ":status": 200, "content-type": "application/connect+proto" });
    // RunTaskResponse: accepted (1) { id (1) }, output (2) { stream (1) STDOUT, data (3) },
    // result (3) { id (1), state (3) FINISHED }; the field numbers of task_service.proto.
    stream.write(envelope(0, Buffer.from([0x0a, 0x03, 0x0a, 0x01, 0x74])));
    const timer = setTimeout(inputDone, 2000);
    void inputEnded.then(() => {
      clearTimeout(timer);
      stream.end(Buffer.concat([
        envelope(0, Buffer.from([0x12, 0x05, 0x08, 0x01, 0x1a, 0x01, 0x0a])),
        envelope(0, Buffer.from([0x1a, 0x05, 0x0a, 0x01, 0x74, 0x18, 0x01])),
        envelope(2, Buffer.from("{}")),
      ]));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const sink = () => new Writable({ write: (_chunk, _encoding, done) => done() });
  const io = { stdin: Readable.from([]), stdout: sink(), stderr: sink(), env: {} };
  try {
    const run = await loader.clientCommands.run();
    await run.main(["--server", `http://127.0.0.1:${server.address().port}`, "--connect-timeout", "5", "--", "true"], io);
  } catch {
    // Whatever ran is compiled: the cache holds it.
  } finally {
    server.close();
    loader.writeCodeCache();
  }
  process.exit(0);
}

/** A Connect streaming envelope: flags, big-endian length, bytes. */
function envelope(flags, bytes) {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([head, bytes]);
}

function loaderSource(bundleName, cacheName) {
  // CommonJS, as the dispatcher that requires it (dist/drce.cjs): no ES module loader starts.
  return `// Made by bin/build.js (bin/client-code-cache.js): loads ${bundleName} with its V8 code cache.
"use strict";
const { readFileSync, writeFileSync } = require("node:fs");
const { join } = require("node:path");
const vm = require("node:vm");

const file = join(__dirname, ${JSON.stringify(bundleName)});
const cacheFile = join(__dirname, ${JSON.stringify(cacheName)});
let cachedData;
try {
  cachedData = readFileSync(cacheFile);
} catch {
  // No cache (a build that could not make one): the bundle is compiled as usual.
}
const script = new vm.Script(\`(function (exports, require, module, __filename, __dirname) {\${readFileSync(file, "utf8")}\\n})\`, { filename: file, ...(cachedData === undefined ? {} : { cachedData }) });
const loaded = { exports: {} };
// This module's own require resolves from dist/, as the bundle's would.
script.runInThisContext()(loaded.exports, require, loaded, file, __dirname);

const { clientCommands, completionCommand, completionUsage, reportFailure } = loaded.exports;

/** Saves the bytecode compiled so far (the build calls it once the bundle has run). */
function writeCodeCache() {
  writeFileSync(cacheFile, script.createCachedData());
}

module.exports = { clientCommands, completionCommand, completionUsage, reportFailure, writeCodeCache };
`;
}
