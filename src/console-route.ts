import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Route, RouteProtocol, RouteRequest, RouteResponse } from "./route-table.js";

/** Where the web console is served: `/ui/` (and `GET /` redirects there). */
export const consolePrefix = "/ui/";

/** One file of the compiled console, held in memory. */
interface ConsoleAsset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
  readonly cacheControl: string;
}

const contentTypes: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
};

// The page may load only what its node serves and call only its node: no CDN, no other site,
// no framing by another page. xterm.js writes <style> elements of its own, hence 'unsafe-inline'
// for styles (never for scripts).
const securityHeaders: Readonly<Record<string, string>> = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/**
 * The directories the compiled console may be in, first found wins: `ui/` beside the running
 * bundle (dist/drce.mjs and its chunks are in dist/, the console in dist/ui/), then `dist/ui/`
 * of the checkout when the node runs from its TypeScript sources (src/console-route.ts).
 */
export function consoleDirectories(): readonly string[] {
  return [fileURLToPath(new URL("./ui/", import.meta.url)), fileURLToPath(new URL("../dist/ui/", import.meta.url))];
}

/** Options of {@link createConsoleRoute}. */
export interface ConsoleRouteOptions {
  /** Directories to look for the compiled console in, in order (default {@link consoleDirectories}). */
  readonly directories?: readonly string[];
}

/**
 * The route of the web console: `GET /` redirects to `/ui/`, `/ui/` is the page, and the
 * files of `dist/ui/` beside it are its assets, with their content types. The page is
 * revalidated at each load (ETag, no-cache); the script and style sheet are named by the hash
 * of their content and kept for a year. Only GET and HEAD are served; anything not in the
 * compiled console is 404. The route is open (a page needs no token to load; the API it calls
 * does), and every request passes the node's browser guard first, as on every route.
 * The files are read once, at the first request that finds them: a node started before the
 * console was built says so (503) until it is built.
 */
export function createConsoleRoute(options: ConsoleRouteOptions = {}): Route {
  const directories = options.directories ?? consoleDirectories();
  let assets: ReadonlyMap<string, ConsoleAsset> | undefined;
  const load = (): ReadonlyMap<string, ConsoleAsset> | undefined => {
    assets ??= loadAssets(directories);
    return assets;
  };
  return {
    name: "console",
    matches: (path) => path === "/" || path === "/ui" || path.startsWith(consolePrefix),
    protocol: consoleRefusals(),
    guard: "open",
    handle: (req, res, path) => serveConsole(req, res, path, load),
  };
}

function serveConsole(req: RouteRequest, res: RouteResponse, path: string, load: () => ReadonlyMap<string, ConsoleAsset> | undefined): void {
  // Nothing here reads a body; a request that sent one leaves the connection reusable.
  req.resume();
  if (req.method !== "GET" && req.method !== "HEAD") {
    send(res, 405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }, `the web console answers GET and HEAD only, not ${req.method ?? "?"}\n`);
    return;
  }
  if (path === "/" || path === "/ui") {
    send(res, 302, { location: consolePrefix, "content-type": "text/plain; charset=utf-8" }, `the web console is at ${consolePrefix}\n`);
    return;
  }
  const found = load();
  if (found === undefined) {
    send(res, 503, { "content-type": "text/plain; charset=utf-8", "retry-after": "5" }, "the web console is not built in this copy of drce: run `npm run build` (npm start does it)\n");
    return;
  }
  const name = path === consolePrefix ? "index.html" : path.slice(consolePrefix.length);
  const asset = found.get(name);
  if (asset === undefined) {
    send(res, 404, { "content-type": "text/plain; charset=utf-8" }, `the web console has no file ${JSON.stringify(name)}\n`);
    return;
  }
  const headers = { ...securityHeaders, "content-type": asset.type, "cache-control": asset.cacheControl, etag: asset.etag };
  const given = req.headers["if-none-match"];
  if (typeof given === "string" && given.split(",").some((tag) => tag.trim() === asset.etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, "content-length": String(asset.body.length) });
  if (req.method === "HEAD") res.end();
  else res.end(asset.body);
}

/** Reads the compiled console from the first directory that holds its index.html. */
function loadAssets(directories: readonly string[]): ReadonlyMap<string, ConsoleAsset> | undefined {
  const dir = directories.find((candidate) => existsSync(join(candidate, "index.html")));
  if (dir === undefined) return undefined;
  const assets = new Map<string, ConsoleAsset>();
  for (const name of readdirSync(dir)) {
    const type = contentTypes[extname(name)];
    if (type === undefined) continue;
    const body = readFileSync(join(dir, name));
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
    // index.html names the hashed files of its build; they never change under their name.
    const cacheControl = name === "index.html" ? "no-cache" : "public, max-age=31536000, immutable";
    assets.set(name, { body, type, etag, cacheControl });
  }
  return assets;
}

/** Refusals on the console's route: the sentence as a line of text, which a browser shows. */
function consoleRefusals(): RouteProtocol {
  return {
    name: "console",
    refuse(res, refusal, headers) {
      send(res, refusal.status, { "content-type": "text/plain; charset=utf-8", ...headers }, `${refusal.message}\n`);
    },
  };
}

function send(res: RouteResponse, status: number, headers: Readonly<Record<string, string>>, body: string): void {
  res.writeHead(status, { ...headers, "content-length": String(Buffer.byteLength(body)) });
  res.end(body);
}
