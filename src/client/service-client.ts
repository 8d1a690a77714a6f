import type { DescService } from "@bufbuild/protobuf";
import type http2 from "node:http2";
import net, { isIP } from "node:net";
import tls from "node:tls";
import { createClient, type Client, type ConnectError, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { createConnectH2Transport } from "./connect-h2-transport.js";
import { NoAnswerError } from "./no-answer-error.js";

/** Options of {@link createServiceClient}: where the node is and how to reach it. */
export interface ServiceClientOptions {
  /** Base URL of the node (http:// or https://), with no path: the API is at its root. */
  readonly server: string;
  /** Bearer token sent in `Authorization`; empty sends none. */
  readonly token: string;
  /** PEM material for an https:// node: CA to trust, client certificate and key (mTLS). */
  readonly tls?: ClientTls;
  /**
   * Milliseconds the node may take to answer a new connection (TCP, TLS, and its reply to an
   * HTTP/2 PING); past it the calls fail with {@link NoAnswerError}. Zero or absent: no bound.
   */
  readonly connectTimeoutMs?: number;
}

/** PEM contents (not paths) a client uses for TLS; each one optional. */
export interface ClientTls {
  /** CA certificates trusted for the node's certificate, instead of the system's. */
  readonly ca?: Uint8Array;
  /** Client certificate presented to a node that asks for one. */
  readonly cert?: Uint8Array;
  /** Private key of the client certificate. */
  readonly key?: Uint8Array;
}

/**
 * Receive window of the CLI's HTTP/2 connection and of each stream. HTTP/2's default of
 * 64 KiB lets a node send one window, then wait a round trip for the update: streamed
 * output ran at an eighth of what the connection carries.
 */
export const receiveWindowBytes = 8 * 1024 * 1024;

/**
 * A session manager whose sessions receive with wide windows: the stream window is a
 * SETTINGS value, the connection window is widened on the session once it exists.
 */
class WideWindowSessionManager extends Http2SessionManager {
  private readonly widened = new WeakSet<http2.Http2Session>();
  private answerTimer: NodeJS.Timeout | undefined;
  private timedOut = false;
  /** Whether the node answered a PING on a connection of this manager. */
  answered = false;
  /** The first error of a connection of this manager, which its streams may report only as CANCEL. */
  get sessionError(): Error | undefined {
    return this.seen.error;
  }

  constructor(
    private readonly url: string,
    secure: http2.SecureClientSessionOptions = {},
    private readonly connectTimeoutMs = 0,
  ) {
    const seen: { error?: Error } = {};
    // Large frames too: the 16 KiB default splits each output chunk into 64 frames. The
    // socket is ours so that its first error (a TLS alert after the handshake, which the
    // streams report only as CANCEL) is kept to explain the failure.
    super(url, {}, { ...secure, settings: { initialWindowSize: receiveWindowBytes, maxFrameSize: 1024 * 1024 }, createConnection: (authority: URL) => openSocket(authority, secure, seen) });
    this.seen = seen;
  }

  private readonly seen: { error?: Error };

  override async request(...args: Parameters<Http2SessionManager["request"]>): Promise<http2.ClientHttp2Stream> {
    this.awaitAnswer();
    const stream = await super.request(...args);
    const session = stream.session;
    if (session !== undefined && !this.widened.has(session)) {
      this.widened.add(session);
      // A session that fails after its streams did (a server that is not HTTP/2 closing on
      // us) emits a second error with no listener left, which would crash the CLI with a
      // stack trace; its streams carry the failure to the caller.
      session.on("error", (error: Error) => (this.seen.error ??= error));
      session.setLocalWindowSize(receiveWindowBytes);
      // A PING is answered by any HTTP/2 server at once, whatever the call does: a call that
      // rightly waits long for its first message (logs -f, run) is not taken for no answer.
      if (!this.answered) {
        session.ping((error) => {
          if (error !== null) return;
          this.answered = true;
          this.gotAnswer();
        });
      }
    }
    return stream;
  }

  override abort(reason?: ConnectError): void {
    this.gotAnswer();
    super.abort(reason);
  }

  /** Starts the connect timeout with the first request. */
  private awaitAnswer(): void {
    if (this.answered || this.answerTimer !== undefined || this.timedOut || this.connectTimeoutMs <= 0) return;
    this.answerTimer = setTimeout(() => {
      this.timedOut = true;
      this.abort(new NoAnswerError(this.url, this.connectTimeoutMs));
    }, this.connectTimeoutMs);
  }

  private gotAnswer(): void {
    clearTimeout(this.answerTimer);
    this.answerTimer = undefined;
  }
}

/** Opens the TCP or TLS socket of an HTTP/2 connection (ALPN h2), keeping its first error in `seen`. */
function openSocket(authority: URL, secure: tls.ConnectionOptions, seen: { error?: Error }): net.Socket {
  const host = authority.hostname.replace(/^\[|\]$/g, "");
  const https = authority.protocol === "https:";
  const port = Number(authority.port || (https ? 443 : 80));
  // SNI takes a host name, never an address.
  const socket = https ? tls.connect({ ...secure, host, port, ALPNProtocols: ["h2"], ...(isIP(host) === 0 ? { servername: host } : {}) }) : net.connect({ host, port });
  socket.once("error", (error) => (seen.error ??= error));
  return socket;
}

/** A client of any drce service and the connection it holds. */
export interface ServiceClient<S extends DescService> {
  /** The generated promise client. */
  readonly client: Client<S>;
  /** Closes the HTTP/2 connection so that the process can exit at once. */
  close(): void;
  /** What the connection saw: whether the server answered as HTTP/2 does, and its first error. */
  transport(): TransportState;
}

/** What a client's connection saw, for explaining a failure. */
export interface TransportState {
  /** The server answered an HTTP/2 PING: it speaks HTTP/2. */
  readonly answered: boolean;
  /** The first error of the connection (a TLS alert, a reset), when there was one. */
  readonly sessionError: Error | undefined;
}

/** One HTTP/2 connection to a node, on which clients of any drce service may be made. */
export interface NodeConnection {
  /** Makes a generated client of a service over this connection. */
  client<S extends DescService>(service: S): Client<S>;
  /** Closes the HTTP/2 connection so that the process can exit at once. */
  close(): void;
  /** What the connection saw: whether the server answered as HTTP/2 does, and its first error. */
  transport(): TransportState;
}

/**
 * Opens one pooled HTTP/2 connection to a node (made at the first call, made again after it
 * broke), sending the bearer token when one is given; clients of every service share it. A
 * manager holds one per data node.
 */
export function createNodeConnection(options: ServiceClientOptions): NodeConnection {
  const tls = options.tls ?? {};
  const secure = {
    ...(tls.ca === undefined ? {} : { ca: Buffer.from(tls.ca) }),
    ...(tls.cert === undefined ? {} : { cert: Buffer.from(tls.cert) }),
    ...(tls.key === undefined ? {} : { key: Buffer.from(tls.key) }),
  };
  const sessionManager = new WideWindowSessionManager(options.server, secure, options.connectTimeoutMs ?? 0);
  const headers: Record<string, string> = options.token === "" ? {} : { authorization: `Bearer ${options.token}` };
  const interceptors: Interceptor[] = [];
  if (options.token !== "") {
    const authorization = headers.authorization as string;
    interceptors.push((next) => (request) => {
      request.header.set("Authorization", authorization);
      return next(request);
    });
  }
  // No compression: task output streams at hundreds of MB/s, where gzip on both ends costs
  // more time than the bytes it saves; a node compresses only for callers that ask.
  const streamingInput = createConnectTransport({ baseUrl: options.server, httpVersion: "2", sessionManager, interceptors, acceptCompression: [] });
  // Unary and server-streaming calls, nearly all of them, go through drce's own transport:
  // connect-node's costs the caller ~2 ms of CPU a call (BENCHMARKS.md, "The client's transport").
  const transport = createConnectH2Transport({ baseUrl: options.server, sessionManager, headers, streamingInput });
  return {
    client: (service) => createClient(service, transport),
    close: () => sessionManager.abort(),
    transport: () => ({ answered: sessionManager.answered, sessionError: sessionManager.sessionError }),
  };
}

/**
 * Creates a Connect client of a drce service (TaskService, NodeService) over its own
 * HTTP/2 connection, sending the bearer token when one is given. The connection belongs to
 * this client alone, so `close()` can end it: an idle HTTP/2 session would otherwise keep
 * the process alive for its idle timeout.
 */
export function createServiceClient<S extends DescService>(service: S, options: ServiceClientOptions): ServiceClient<S> {
  const connection = createNodeConnection(options);
  return { client: connection.client(service), close: () => connection.close(), transport: () => connection.transport() };
}
