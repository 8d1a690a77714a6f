import type http from "node:http";
import type http2 from "node:http2";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { cors } from "@connectrpc/connect";

/** Options of {@link createBrowserGuard}. */
export interface BrowserGuardOptions {
  /** The host part of `--listen`: an address, or a wildcard (`0.0.0.0`, `::`). */
  readonly listenHost: string;
  /** Host names the operator lets callers use besides the node's own addresses (`--allow-host`). */
  readonly allowHosts: readonly string[];
  /** Origins whose pages may call the node (`--cors-origin`), as URL origins. */
  readonly corsOrigins: readonly string[];
  /** Whether the node serves HTTPS, which makes its own origin `https://...`. */
  readonly secure: boolean;
}

/** What the guard decided about one request. */
export type BrowserVerdict =
  /** Go on; `headers` are the CORS headers to add to the reply (empty for non-browser callers). */
  | { readonly kind: "pass"; readonly headers: Readonly<Record<string, string>> }
  /** A CORS preflight of an allowed origin: answer 204 with these headers, run nothing. */
  | { readonly kind: "preflight"; readonly headers: Readonly<Record<string, string>> }
  /** Refused before any work: 421 for a foreign `Host`, 403 for a foreign `Origin`. */
  | { readonly kind: "refuse"; readonly status: 403 | 421; readonly message: string };

/** A request as the guard reads it: HTTP/1.1 or HTTP/2 (where `:authority` replaces `Host`). */
export type GuardedRequest = Pick<http.IncomingMessage | http2.Http2ServerRequest, "headers" | "method">;

/**
 * Header names a browser page of an allowed origin may send: Connect's, gRPC-Web's, and
 * `authorization` for the node's token.
 */
export const corsAllowedHeaders: readonly string[] = [...new Set([...cors.allowedHeaders, "authorization"].map((name) => name.toLowerCase()))];

/**
 * Header names a browser page of an allowed origin may read: the gRPC-Web status, and the
 * legacy error code and retry hint drce adds to its errors.
 */
export const corsExposedHeaders: readonly string[] = [...new Set([...cors.exposedHeaders, "drce-error-code", "retry-after", "www-authenticate"].map((name) => name.toLowerCase()))];

const loopbackNames = ["localhost", "127.0.0.1", "::1"];
const wildcards = new Set(["", "0.0.0.0", "::", "[::]"]);
// A node on a wildcard address answers to each address of the host; interfaces come and go.
const interfaceRefreshMs = 5000;

/**
 * Creates the check every HTTP request passes before anything else: the `Host` (or
 * `:authority`) must name the node (an address it listens on, a loopback name, or a name
 * listed with `--allow-host`), which defeats DNS rebinding; and a request from a web page
 * (an `Origin` header, or a browser's `Sec-Fetch-Site` saying another site) must come from
 * the node's own origin or one listed with `--cors-origin`, which defeats cross-site
 * requests such as a no-cors POST. Loopback is no boundary against a browser.
 */
export function createBrowserGuard(options: BrowserGuardOptions): (request: GuardedRequest) => BrowserVerdict {
  const fixed = new Set([...loopbackNames, ...options.allowHosts.map(normalizeHostName)]);
  const listenHost = normalizeHostName(options.listenHost);
  const wildcard = wildcards.has(listenHost);
  if (!wildcard) fixed.add(listenHost);
  const origins = new Set(options.corsOrigins);
  const scheme = options.secure ? "https" : "http";
  let interfaces = new Set<string>();
  let interfacesAt = 0;
  const isInterfaceAddress = (name: string): boolean => {
    if (Date.now() - interfacesAt > interfaceRefreshMs) {
      interfaces = new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((entry) => entry.address.toLowerCase())));
      interfacesAt = Date.now();
    }
    return interfaces.has(name);
  };
  const exposed = corsExposedHeaders.join(", ");
  const preflightHeaders = (origin: string): Record<string, string> => ({
    "access-control-allow-origin": origin,
    "access-control-allow-methods": cors.allowedMethods.join(", "),
    "access-control-allow-headers": corsAllowedHeaders.join(", "),
    "access-control-expose-headers": exposed,
    // Chrome asks before a page reaches a more private address (Private Network Access).
    "access-control-allow-private-network": "true",
    "access-control-max-age": "7200",
    vary: "Origin",
  });

  return (request) => {
    const authority = headerValue(request.headers[":authority"]) ?? headerValue(request.headers.host);
    if (authority === undefined || authority === "") return { kind: "refuse", status: 421, message: "the request names no host (no Host header); this node answers only to its own addresses" };
    const name = hostNameOf(authority);
    if (name === undefined || !(fixed.has(name) || (wildcard && isInterfaceAddress(name)))) {
      return {
        kind: "refuse",
        status: 421,
        message: `this node does not answer to the host name ${JSON.stringify(name ?? authority)}: only to the addresses it listens on, localhost, 127.0.0.1, [::1], and names the operator lists with --allow-host`,
      };
    }
    const origin = headerValue(request.headers.origin);
    if (origin === undefined) {
      const site = headerValue(request.headers["sec-fetch-site"]);
      const mode = headerValue(request.headers["sec-fetch-mode"]);
      // A browser sends no Origin on a cross-site GET of an image or script; it still says
      // where the request comes from. A link the user follows (navigate) is the user's own.
      if ((site === "cross-site" || site === "same-site") && mode !== "navigate") {
        return { kind: "refuse", status: 403, message: "requests from the pages of other sites are refused (Sec-Fetch-Site: cross-site)" };
      }
      return { kind: "pass", headers: {} };
    }
    const own = ownOrigin(scheme, authority);
    const listed = origins.has(origin);
    if (!listed && origin !== own) {
      return { kind: "refuse", status: 403, message: `requests from web pages of ${JSON.stringify(origin)} are refused; the operator can allow that origin with --cors-origin ${origin}` };
    }
    if (request.method === "OPTIONS" && headerValue(request.headers["access-control-request-method"]) !== undefined) return { kind: "preflight", headers: preflightHeaders(origin) };
    return { kind: "pass", headers: { "access-control-allow-origin": origin, "access-control-expose-headers": exposed, vary: "Origin" } };
  };
}

/**
 * Lower-cases a host name and drops a trailing dot and IPv6 brackets, so that the forms a
 * caller may write compare equal (`LOCALHOST.`, `[::1]`).
 */
export function normalizeHostName(name: string): string {
  let value = name.trim().toLowerCase();
  if (value.startsWith("[") && value.endsWith("]")) value = value.slice(1, -1);
  if (value.endsWith(".")) value = value.slice(0, -1);
  return value;
}

/** The host name of a `Host` value (`name`, `name:port`, `[v6]`, `[v6]:port`), or undefined when it is malformed. */
export function hostNameOf(authority: string): string | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s/@]+)(?::(\d{1,5}))?$/.exec(authority.trim());
  if (match === null) return undefined;
  return normalizeHostName(match[1] ?? "");
}

function ownOrigin(scheme: string, authority: string): string | undefined {
  try {
    return new URL(`${scheme}://${authority}`).origin;
  } catch {
    // A Host that makes no URL has no origin to match: the caller refuses the request.
    return undefined;
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Checks an origin given to `--cors-origin` and returns it as a browser sends it (scheme,
 * host and port only; lower case; no default port). Throws a sentence for anything else:
 * a wildcard would let every page drive the node.
 */
export function parseCorsOrigin(value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    // Not a URL: refused below with the sentence every bad origin gets.
    url = undefined;
  }
  const originOnly = /^https?:\/\/[^/?#@*\s]+\/?$/i.test(value);
  if (url === undefined || !originOnly || (url.protocol !== "http:" && url.protocol !== "https:")) {
    throw new Error(`--cors-origin must be an origin such as https://app.example.com:8443 (scheme, host, optional port; no path, no wildcard), got ${JSON.stringify(value)}`);
  }
  return url.origin;
}

/** Checks a name given to `--allow-host` (a DNS name or an address, no port) and normalizes it. */
export function parseAllowHost(value: string): string {
  const name = normalizeHostName(value);
  if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(name) && isIP(name) === 0) {
    throw new Error(`--allow-host must be a host name or an address without a port, got ${JSON.stringify(value)}`);
  }
  return name;
}
