import http from "node:http";
import http2 from "node:http2";
import net from "node:net";

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
  /** Milliseconds a whole HTTP/1.1 request body may take (0: no limit, as streams run long). */
  readonly requestTimeoutMs?: number;
}

/** A listening server for HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on one port. */
export interface DualServer {
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  /**
   * Stops accepting connections (new ones are refused) while those already open go on;
   * the first step of a graceful shutdown. `close()` finishes the job.
   */
  stopAccepting(): void;
  close(): Promise<void>;
}

const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * Serves HTTP/1.1 (curl, legacy callers) and cleartext HTTP/2 (gRPC, Connect clients)
 * on one port: the first bytes of a connection tell which, as HTTP/2's prior-knowledge
 * preface is fixed.
 */
export function createDualServer(options: DualServerOptions): DualServer {
  const h1 = http.createServer({ headersTimeout: options.headersTimeoutMs ?? 30_000, requestTimeout: options.requestTimeoutMs ?? 0 }, options.handler);
  h1.keepAliveTimeout = 65_000;
  const h2 = http2.createServer({ settings: options.http2Settings ?? {} }, options.handler);
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    const window = options.http2Settings?.initialWindowSize;
    if (window !== undefined && window > 65_535) {
      // The connection-level window is not a SETTINGS value; widen it per session.
      session.once("connect", () => session.setLocalWindowSize(window * 4));
    }
  });
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("readable", () => {
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
          const address = server.address() as net.AddressInfo;
          resolve({ host: address.address, port: address.port });
        });
      });
    },
    async close() {
      await new Promise<void>((resolve) => {
        void stopAccepting().then(resolve);
        for (const session of sessions) session.close();
        h1.closeIdleConnections();
        setTimeout(() => {
          for (const socket of sockets) socket.destroy();
        }, 1000).unref();
      });
    },
  };
}
