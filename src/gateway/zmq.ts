import { setMaxListeners } from "node:events";
import { Router } from "zeromq";
import { ErrorCode } from "../domain/errors.js";
import { collectLegacyBody, type LegacyBody } from "./legacy-body.js";
import type { LegacyLogger } from "./legacy-handler.js";
import { secureSocket, type SecuredSocket } from "./zmq-auth.js";

/**
 * What answers the messages of a ZeroMQ gateway: the legacy task handler, or the admin
 * handler. Neither may reject.
 */
export interface ZmqMessageHandler {
  /** Answers one message; `route` is the frame after the body, when the client sent one (the original clients' route). */
  handle(body: Uint8Array, signal: AbortSignal, route?: Uint8Array): Promise<{ readonly body: string }>;
  /** When present, used instead of `handle`: the reply is built once, into the one buffer its frame needs. */
  handleStreamed?(body: Uint8Array, signal: AbortSignal, route?: Uint8Array): Promise<{ readonly body: LegacyBody }>;
  errorReply(errorCode: number, message: string): { readonly body: string };
}

/** Options of {@link createZmqGateway}. */
export interface ZmqGatewayOptions extends ZmqBindOptions {
  /** The handler answering each message (legacy task messages or admin commands). */
  readonly handler: ZmqMessageHandler;
}

/** Options of {@link bindZmqGateway}: everything but the handler, which comes once bound. */
export interface ZmqBindOptions {
  /** Where to bind, e.g. "tcp://127.0.0.1:5557"; port 0 picks a free port. */
  readonly endpoint: string;
  /** Largest accepted message part, in bytes; zeromq drops a peer that sends a larger one. */
  readonly maxBodyBytes?: number;
  /** Where send failures and loop errors are reported. */
  readonly logger?: LegacyLogger;
  /**
   * The node's token; when set, clients must present it as their PLAIN password (see
   * {@link secureSocket}), and peers without it never get a message through.
   */
  readonly token?: string;
}

/** A running ZeroMQ gateway. */
export interface ZmqGateway {
  /** The endpoint actually bound (port 0 resolved). */
  readonly endpoint: string;
  /** Stops receiving, lets requests in flight answer (their sync waits aborted), closes the socket. */
  close(): Promise<void>;
}

/**
 * A gateway whose socket is bound but which answers nothing yet: messages wait in the socket
 * until `serve` gives it its handler, so a handler can be built knowing the bound endpoint.
 */
export interface BoundZmqGateway extends ZmqGateway {
  /** Starts answering messages with the handler; called once. */
  serve(handler: ZmqMessageHandler): void;
}

/** Binds a gateway and serves it with the handler at once (see {@link bindZmqGateway}). */
export async function createZmqGateway(options: ZmqGatewayOptions): Promise<ZmqGateway> {
  const gateway = await bindZmqGateway(options);
  gateway.serve(options.handler);
  return gateway;
}

/**
 * Binds a gateway that, once given its handler (`serve`), serves the legacy protocol over
 * ZeroMQ as the original HCE nodes did: a ROUTER socket that
 * DEALER clients (with an identity) send `[id, body]` to, optionally followed by a route frame
 * (handed to the handler: a set request carries the placement it names, see legacy-route.ts).
 * The ROUTER sees `[identity, id, body, ...]` and answers `[identity, id, responseBody]`; a REQ
 * client's empty delimiter frame takes the id's place, so a REQ gets `[responseBody]` back.
 * Requests are served concurrently; replies go out through one queue because a zeromq v6
 * socket allows a single pending send. With a token, only peers presenting it as their PLAIN
 * password complete the handshake (see zmq-auth.ts).
 */
export async function bindZmqGateway(options: ZmqBindOptions): Promise<BoundZmqGateway> {
  const { endpoint, logger } = options;
  if (typeof endpoint !== "string" || !/^(tcp|ipc|inproc):\/\//.test(endpoint)) {
    throw new TypeError(`createZmqGateway: endpoint ${JSON.stringify(endpoint)} is not a zeromq address`);
  }
  if (options.maxBodyBytes !== undefined && !(Number.isSafeInteger(options.maxBodyBytes) && options.maxBodyBytes > 0)) {
    throw new TypeError("createZmqGateway: maxBodyBytes must be a positive integer");
  }

  // A short linger lets the last replies leave on close without holding shutdown up.
  const socket = new Router({ linger: 500 });
  if (options.maxBodyBytes !== undefined) socket.maxMessageSize = options.maxBodyBytes;
  let secured: SecuredSocket | undefined;
  try {
    if (options.token !== undefined && options.token !== "") secured = await secureSocket(socket, options.token);
    await socket.bind(endpoint);
  } catch (error) {
    socket.close();
    await secured?.release();
    throw error;
  }
  const bound = socket.lastEndpoint ?? endpoint;

  const controller = new AbortController();
  // Every request in flight waits on this one signal; hundreds at once are expected.
  setMaxListeners(0, controller.signal);
  const inFlight = new Set<Promise<void>>();
  let sendChain: Promise<void> = Promise.resolve();

  const send = (frames: (Buffer | string)[]): Promise<void> => {
    sendChain = sendChain
      .then(() => (socket.closed ? undefined : socket.send(frames)))
      .catch((error: unknown) => logger?.warn({ err: error }, "zeromq reply could not be sent"));
    return sendChain;
  };

  const answer = async (handler: ZmqMessageHandler, frames: Buffer[]): Promise<void> => {
    const [identity, id, body, route] = frames;
    if (identity === undefined) return;
    if (id === undefined || body === undefined) {
      // A DEALER that sent [body] without an id frame: answer in the usual shape all the same.
      const reply = handler.errorReply(ErrorCode.Parse, "expected the frames [id, body]");
      await send([identity, id ?? Buffer.alloc(0), reply.body]);
      return;
    }
    const reply = controller.signal.aborted
      ? handler.errorReply(ErrorCode.InternalFo, "the node is shutting down")
      : handler.handleStreamed === undefined
        ? await handler.handle(body, controller.signal, route)
        : { body: await frameOf(handler, await handler.handleStreamed(body, controller.signal, route)) };
    await send([identity, id, reply.body]);
  };

  /**
   * A ZeroMQ frame is one buffer: a streamed reply is read into one of its exact length
   * (never a string, never a second copy). One that cannot be read becomes an error reply.
   */
  const frameOf = async (handler: ZmqMessageHandler, reply: { readonly body: LegacyBody }): Promise<Buffer | string> => {
    try {
      return await collectLegacyBody(reply.body);
    } catch (error) {
      logger?.error({ err: error }, "zeromq reply could not be built");
      return handler.errorReply(ErrorCode.InternalFo, "internal error of the node").body;
    } finally {
      await reply.body.release();
    }
  };

  const receive = async (handler: ZmqMessageHandler): Promise<void> => {
    try {
      for await (const frames of socket) {
        const task = answer(handler, frames).catch((error: unknown) => logger?.error({ err: error }, "zeromq request failed"));
        inFlight.add(task);
        void task.finally(() => inFlight.delete(task));
      }
    } catch (error) {
      if (!socket.closed) logger?.error({ err: error }, "zeromq receive loop stopped");
    }
  };
  let loop: Promise<void> | undefined;

  let closing: Promise<void> | undefined;
  return {
    endpoint: bound,
    serve(handler) {
      if (loop !== undefined) throw new Error("bindZmqGateway: serve was already called");
      if (closing !== undefined) return;
      loop = receive(handler);
    },
    close() {
      closing ??= (async () => {
        controller.abort(new Error("the gateway is closing"));
        await Promise.allSettled([...inFlight]);
        await sendChain;
        socket.close();
        await loop;
        // Only now: with the socket closed, no handshake can slip through without a handler.
        await secured?.release();
      })();
      return closing;
    },
  };
}
