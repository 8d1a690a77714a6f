import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
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
  if (options.tls !== undefined) return createSecureServer(options, options.tls);
  const headersTimeout = options.headersTimeoutMs ?? 30_000;
  const h1 = http.createServer({ headersTimeout, requestTimeout: options.requestTimeoutMs ?? 300_000, connectionsCheckingInterval: checkingInterval(headersTimeout) }, options.handler);
  h1.keepAliveTimeout = 65_000;
  const h2 = http2.createServer({ settings: options.http2Settings ?? {} }, options.handler);
  const sockets = new Set<net.Socket>();
  const sessions = trackSessions(h2, options.http2Settings);
  const sniffTimeoutMs = options.headersTimeoutMs ?? 30_000;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // A connection that never sends its first bytes would otherwise be held forever.
    const silent = setTimeout(() => socket.destroy(), sniffTimeoutMs);
    silent.unref();
    socket.once("close", () => clearTimeout(silent));
    socket.once("readable", () => {
      clearTimeout(silent);
      const head: Buffer | null = socket.read(Math.min(preface.length, socket.readableLength)) ?? socket.read();
      if (head === null) {
        socket.once("readable", () => socket.destroy());
        return;
      }
      socket.unshift(head);
      const isHttp2 = preface.subarray(0, head.length).equals(head.subarray(0, Math.min(head.length, preface.length)));
      (isHttp2 ? h2 : h1).emit("connection", socket);
    });
    socket.on("error", () => socket.destroy());
  });
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
function createSecureServer(options: DualServerOptions, material: DualServerTls): DualServer {
  const mutual = material.ca !== undefined;
  const server = http2.createSecureServer(
    {
      allowHTTP1: true,
      cert: material.cert,
      key: material.key,
      ...(mutual ? { ca: material.ca, requestCert: true, rejectUnauthorized: true } : {}),
      minVersion: "TLSv1.2",
      // A peer that stalls in the handshake holds a socket; bound it like the header wait.
      handshakeTimeout: options.headersTimeoutMs ?? 30_000,
      settings: options.http2Settings ?? {},
    },
    options.handler,
  );
  // HTTP/1.1 requests over this server obey the same header wait as the cleartext one.
  const h1Limits = server as unknown as { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number };
  h1Limits.headersTimeout = options.headersTimeoutMs ?? 30_000;
  h1Limits.requestTimeout = options.requestTimeoutMs ?? 300_000;
  h1Limits.connectionsCheckingInterval = checkingInterval(h1Limits.headersTimeout);
  const sockets = new Set<net.Socket>();
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  const sessions = trackSessions(server, options.http2Settings);
  // A refused handshake is the client's problem; keep it from surfacing as a server error.
  server.on("tlsClientError", () => undefined);
  return serve(server, sockets, sessions, {});
}

/** Keeps an HTTP/2 server's open sessions, widening each one's connection window. */
function trackSessions(server: http2.Http2Server | http2.Http2SecureServer, settings: http2.Settings | undefined): Set<http2.ServerHttp2Session> {
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    const window = settings?.initialWindowSize;
    if (window !== undefined && window > 65_535) {
      // The connection-level window is not a SETTINGS value; widen it per session.
      session.once("connect", () => session.setLocalWindowSize(window * 4));
    }
  });
  return sessions;
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
