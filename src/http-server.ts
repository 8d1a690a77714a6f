import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { readFileSync } from "node:fs";
import type tls from "node:tls";

/** A request handler serving both HTTP/1.1 and HTTP/2 requests. */
export type DualHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Options of {@link createDualServer}. */
export interface DualServerOptions {
  readonly handler: DualHandler;
  /** HTTP/2 settings; larger windows matter for streaming output fast. */
  readonly http2Settings?: http2.Settings;
  /** Milliseconds a request's headers may take. */
  readonly headersTimeoutMs?: number;
  /**
   * Milliseconds an HTTP/1.1 request may take to arrive in full (default 300000; 0: no limit).
   * The clock stops once the request is in, so long replies and streams are not cut.
   */
  readonly requestTimeoutMs?: number;
  /**
   * Milliseconds a connection may stay open with no request in flight: an HTTP/1.1
   * keep-alive connection, an HTTP/2 session with no open stream (default 65000).
   */
  readonly idleTimeoutMs?: number;
  /**
   * Request paths whose request body is a stream that lasts as long as the call (a task's
   * stdin): exempt from `requestTimeoutMs` on HTTP/2, where such calls are served.
   */
  readonly streamingRequestPaths?: ReadonlySet<string>;
  /**
   * Connections open at once, at most; past it a new connection is closed as it arrives
   * (default: half the process's open-file limit, so that tasks, spools and the store keep the rest).
   */
  readonly maxConnections?: number;
  /**
   * Serve HTTPS instead: HTTP/2 chosen by ALPN, HTTP/1.1 allowed (curl, legacy callers).
   * With `ca`, clients must present a certificate it signed, checked in the handshake (mTLS).
   */
  readonly tls?: DualServerTls;
}

/** PEM material of an HTTPS endpoint. */
export interface DualServerTls {
  /** Certificate chain. */
  readonly cert: string | Buffer;
  /** Private key. */
  readonly key: string | Buffer;
  /** CA whose signature a client certificate needs; absent: no client certificate asked. */
  readonly ca?: string | Buffer;
}

/** A listening server for HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on one port. */
export interface DualServer {
  /** Binds host:port and resolves with the address actually bound. */
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  /**
   * Stops accepting connections (new ones are refused) while those already open go on;
   * the first step of a graceful shutdown. `close()` finishes the job.
   */
  stopAccepting(): void;
  /** Stops accepting, closes HTTP/2 sessions and idle connections, and drops the rest after 1 s. */
  close(): Promise<void>;
}

/** The bounds every connection is held to, resolved from the options once. */
interface ConnectionLimits {
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly streamingRequestPaths: ReadonlySet<string>;
  readonly maxConnections: number;
}

function connectionLimits(options: DualServerOptions): ConnectionLimits {
  return {
    headersTimeoutMs: options.headersTimeoutMs ?? 30_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 300_000,
    idleTimeoutMs: options.idleTimeoutMs ?? 65_000,
    streamingRequestPaths: options.streamingRequestPaths ?? new Set(),
    maxConnections: options.maxConnections !== undefined && options.maxConnections > 0 ? options.maxConnections : defaultMaxConnections(),
  };
}

/**
 * Half the soft limit on open files (`/proc/self/limits`), at least 64: each connection is a
 * descriptor, and a node whose connections took them all could not open a task's spool or
 * status file, or accept the next caller (EMFILE).
 */
export function defaultMaxConnections(): number {
  let soft = 1024;
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    if (line?.[1] !== undefined) soft = line[1] === "unlimited" ? 1 << 20 : Number(line[1]);
  } catch {
    // Not Linux, or /proc is not mounted: the common default limit.
  }
  return Math.max(64, Math.floor(soft / 2));
}

/** How often node checks HTTP/1.1 connections against their timeouts: often enough to matter. */
function checkingInterval(headersTimeoutMs: number): number {
  return Math.min(30_000, Math.max(100, Math.floor(headersTimeoutMs / 2)));
}

const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * Serves HTTP/1.1 (curl, legacy callers) and cleartext HTTP/2 (gRPC, Connect clients)
 * on one port: the first bytes of a connection tell which, as HTTP/2's prior-knowledge
 * preface is fixed.
 */
export function createDualServer(options: DualServerOptions): DualServer {
  const limits = connectionLimits(options);
  if (options.tls !== undefined) return createSecureServer(options, options.tls, limits);
  const headersTimeout = limits.headersTimeoutMs;
  const h1 = http.createServer({ headersTimeout, requestTimeout: limits.requestTimeoutMs, connectionsCheckingInterval: checkingInterval(headersTimeout) }, options.handler);
  h1.keepAliveTimeout = limits.idleTimeoutMs;
  const h2 = http2.createServer({ settings: options.http2Settings ?? {} }, options.handler);
  const sockets = new Set<net.Socket>();
  const sessions = trackSessions(h2, options.http2Settings, limits);
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // A connection that never sends enough of its first bytes to tell its protocol (nothing,
    // or a cut-short HTTP/2 preface) would otherwise be held forever.
    const silent = setTimeout(() => socket.destroy(), headersTimeout);
    silent.unref();
    socket.once("close", () => clearTimeout(silent));
    let head: Buffer = Buffer.alloc(0);
    const sniff = (): void => {
      for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null; ) head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const compared = Math.min(head.length, preface.length);
      const isHttp2 = preface.subarray(0, compared).equals(head.subarray(0, compared));
      // Bytes that are still a beginning of the preface could go either way: wait for more.
      if (isHttp2 && head.length < preface.length) return;
      clearTimeout(silent);
      socket.off("readable", sniff);
      socket.off("end", ended);
      socket.unshift(head);
      (isHttp2 ? h2 : h1).emit("connection", socket);
    };
    // A peer that closes before its protocol is known sent nothing to serve.
    const ended = (): void => void socket.destroy();
    socket.on("readable", sniff);
    socket.once("end", ended);
    socket.on("error", () => socket.destroy());
  });
  server.maxConnections = limits.maxConnections;
  return serve(server, sockets, sessions, {
    // The HTTP/1.1 server gets its sockets from the sniffer and never listens itself, but node
    // only enforces headersTimeout/requestTimeout on a server that emitted "listening" (that
    // starts its connection checks), so a slow-headers client would otherwise hold a socket for ever.
    onListening: () => h1.emit("listening"),
    onClose: () => {
      // Stops the HTTP/1.1 connection checks; its "not running" error is expected.
      h1.close(() => undefined);
      h1.closeIdleConnections();
    },
  });
}

/**
 * The HTTPS form of {@link createDualServer}: one TLS port where ALPN picks HTTP/2 or HTTP/1.1.
 * A client without an acceptable certificate (when `ca` is set) fails the handshake and never
 * reaches the handler.
 */
function createSecureServer(options: DualServerOptions, material: DualServerTls, limits: ConnectionLimits): DualServer {
  const mutual = material.ca !== undefined;
  const server = http2.createSecureServer(
    {
      allowHTTP1: true,
      cert: material.cert,
      key: material.key,
      ...(mutual ? { ca: material.ca, requestCert: true, rejectUnauthorized: true } : {}),
      minVersion: "TLSv1.2",
      // A peer that stalls in the handshake holds a socket; bound it like the header wait.
      handshakeTimeout: limits.headersTimeoutMs,
      settings: options.http2Settings ?? {},
    },
    options.handler,
  );
  // HTTP/1.1 requests over this server obey the same header wait as the cleartext one.
  const h1Limits = server as unknown as { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number };
  h1Limits.headersTimeout = limits.headersTimeoutMs;
  h1Limits.requestTimeout = limits.requestTimeoutMs;
  h1Limits.connectionsCheckingInterval = checkingInterval(h1Limits.headersTimeout);
  (server as unknown as { keepAliveTimeout: number }).keepAliveTimeout = limits.idleTimeoutMs;
  server.maxConnections = limits.maxConnections;
  const sockets = new Set<net.Socket>();
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  const sessions = trackSessions(server, options.http2Settings, limits);
  // A refused handshake is the client's problem; keep it from surfacing as a server error.
  server.on("tlsClientError", () => undefined);
  return serve(server, sockets, sessions, {});
}

/**
 * Keeps an HTTP/2 server's open sessions, widening each one's connection window, and holds
 * each session and stream to the bounds HTTP/1.1 connections have (see {@link boundSession}).
 */
function trackSessions(server: http2.Http2Server | http2.Http2SecureServer, settings: http2.Settings | undefined, limits: ConnectionLimits): Set<http2.ServerHttp2Session> {
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    boundSession(session, limits);
    const window = settings?.initialWindowSize;
    if (window !== undefined && window > 65_535) {
      // The connection-level window is not a SETTINGS value; widen it per session.
      session.once("connect", () => session.setLocalWindowSize(window * 4));
    }
  });
  return sessions;
}

/**
 * The HTTP/2 counterparts of HTTP/1.1's header, keep-alive and request timeouts; without
 * them a peer holds a socket (and a descriptor) for as long as it likes:
 * - handshake: a session whose peer has not sent its SETTINGS (the end of the connection
 *   preface) within `headersTimeoutMs` is destroyed;
 * - idle session: a session with no open stream for `idleTimeoutMs` is closed (GOAWAY, then
 *   destroyed if the peer does not let go);
 * - unfinished stream: a request whose body has not ended within `requestTimeoutMs` of its
 *   headers is answered 408 (when nothing was answered yet) and reset, except on
 *   `streamingRequestPaths`, whose body lasts as long as the call. A reply still being
 *   streamed once the request is in is never cut.
 */
function boundSession(session: http2.ServerHttp2Session, limits: ConnectionLimits): void {
  const timers = new Set<NodeJS.Timeout>();
  const after = (ms: number, action: () => void): NodeJS.Timeout => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      action();
    }, ms);
    timer.unref();
    timers.add(timer);
    return timer;
  };
  const cancel = (timer: NodeJS.Timeout | undefined): void => {
    if (timer === undefined) return;
    clearTimeout(timer);
    timers.delete(timer);
  };
  session.once("close", () => {
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
  });
  const handshake = after(limits.headersTimeoutMs, () => session.destroy());
  session.once("remoteSettings", () => cancel(handshake));

  let open = 0;
  let idle: NodeJS.Timeout | undefined;
  const armIdle = (): void => {
    idle = after(limits.idleTimeoutMs, () => {
      if (open > 0 || session.closed || session.destroyed) return;
      session.close();
      // A peer that does not read the GOAWAY keeps the socket; it goes anyway.
      after(1000, () => session.destroy());
    });
  };
  armIdle();
  session.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    open++;
    cancel(idle);
    idle = undefined;
    const path = (headers[":path"] ?? "").split("?")[0] ?? "";
    const unfinished = limits.streamingRequestPaths.has(path)
      ? undefined
      : after(limits.requestTimeoutMs, () => {
          if (stream.destroyed || stream.closed || stream.state.remoteClose !== 0) return;
          if (!stream.headersSent) stream.respond({ ":status": 408 }, { endStream: true });
          // NO_ERROR after a complete answer tells the peer to stop sending (RFC 9113, 8.1).
          stream.close(stream.headersSent ? http2.constants.NGHTTP2_NO_ERROR : http2.constants.NGHTTP2_CANCEL);
        });
    stream.once("close", () => {
      cancel(unfinished);
      open--;
      if (open === 0 && !session.closed && !session.destroyed) armIdle();
    });
  });
}

/**
 * The {@link DualServer} of a listener: listen, stop accepting, and close (sessions closed,
 * idle connections too through `onClose`, the rest dropped after 1 s).
 */
function serve(
  server: net.Server,
  sockets: ReadonlySet<net.Socket>,
  sessions: ReadonlySet<http2.ServerHttp2Session>,
  hooks: { readonly onListening?: () => void; readonly onClose?: () => void },
): DualServer {
  let listenerClosed: Promise<void> | undefined;
  const stopAccepting = (): Promise<void> => (listenerClosed ??= new Promise<void>((resolve) => server.close(() => resolve())));
  return {
    stopAccepting() {
      void stopAccepting();
    },
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          hooks.onListening?.();
          const address = server.address() as net.AddressInfo;
          resolve({ host: address.address, port: address.port });
        });
      });
    },
    async close() {
      hooks.onClose?.();
      await new Promise<void>((resolve) => {
        void stopAccepting().then(resolve);
        for (const session of sessions) session.close();
        setTimeout(() => {
          for (const socket of sockets) socket.destroy();
        }, 1000).unref();
      });
    },
  };
}
