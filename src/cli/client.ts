import type { DescService } from "@bufbuild/protobuf";
import type http2 from "node:http2";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { UsageError } from "./errors.js";
import { defaultServer } from "./options.js";

/** A TaskService client and the connection it holds. */
export interface TaskClient {
  /** The generated promise client. */
  readonly client: Client<typeof TaskService>;
  /** Closes the HTTP/2 connection so that the process can exit at once. */
  close(): void;
}

/** Options of {@link createTaskClient}. */
export interface TaskClientOptions {
  /** Base URL of the node (http:// or https://). */
  readonly server: string;
  /** Bearer token sent in `Authorization`; empty sends none. */
  readonly token: string;
  /** PEM material for an https:// node: CA to trust, client certificate and key (mTLS). */
  readonly tls?: ClientTls;
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
 * The server URL a command uses: `--server`, else `DRCE_SERVER`, else the default
 * loopback node.
 */
export function serverUrl(flag: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  const server = flag ?? (env["DRCE_SERVER"] || undefined) ?? defaultServer;
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new UsageError(`--server ${JSON.stringify(server)}: not a URL (e.g. http://127.0.0.1:8470)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`--server ${server}: use an http:// or https:// URL`);
  return server;
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

  constructor(url: string, secure: http2.SecureClientSessionOptions = {}) {
    // Large frames too: the 16 KiB default splits each output chunk into 64 frames.
    super(url, {}, { ...secure, settings: { initialWindowSize: receiveWindowBytes, maxFrameSize: 1024 * 1024 } });
  }

  override async request(...args: Parameters<Http2SessionManager["request"]>): Promise<http2.ClientHttp2Stream> {
    const stream = await super.request(...args);
    const session = stream.session;
    if (session !== undefined && !this.widened.has(session)) {
      this.widened.add(session);
      session.setLocalWindowSize(receiveWindowBytes);
    }
    return stream;
  }
}

/**
 * Creates a Connect client of TaskService over HTTP/2. The connection belongs to this
 * client alone, so `close()` can end it: an idle HTTP/2 session would otherwise keep the
 * process alive for its idle timeout.
 */
export function createTaskClient(options: TaskClientOptions): TaskClient {
  return createServiceClient(TaskService, options);
}

/** A client of any drce service and the connection it holds. */
export interface ServiceClient<S extends DescService> {
  /** The generated promise client. */
  readonly client: Client<S>;
  /** Closes the HTTP/2 connection so that the process can exit at once. */
  close(): void;
}

/**
 * Creates a Connect client of a drce service (TaskService, NodeService) over its own
 * HTTP/2 connection, sending the bearer token when one is given.
 */
export function createServiceClient<S extends DescService>(service: S, options: TaskClientOptions): ServiceClient<S> {
  const tls = options.tls ?? {};
  const secure = {
    ...(tls.ca === undefined ? {} : { ca: Buffer.from(tls.ca) }),
    ...(tls.cert === undefined ? {} : { cert: Buffer.from(tls.cert) }),
    ...(tls.key === undefined ? {} : { key: Buffer.from(tls.key) }),
  };
  const sessionManager = new WideWindowSessionManager(options.server, secure);
  const interceptors: Interceptor[] = [];
  if (options.token !== "") {
    const authorization = `Bearer ${options.token}`;
    interceptors.push((next) => (request) => {
      request.header.set("Authorization", authorization);
      return next(request);
    });
  }
  // No compression: task output streams at hundreds of MB/s, where gzip on both ends costs
  // more time than the bytes it saves; a node compresses only for callers that ask.
  const transport = createConnectTransport({ baseUrl: options.server, httpVersion: "2", sessionManager, interceptors, acceptCompression: [] });
  return {
    client: createClient(service, transport),
    close: () => sessionManager.abort(),
  };
}
