import { Reply, type Socket } from "zeromq";
import { createTokenCheck } from "../auth.js";

/**
 * The inproc address libzmq sends ZAP (ZeroMQ RFC 27) requests to. One handler serves every
 * socket of a zeromq context; the node's sockets all use the default context.
 */
export const zapEndpoint = "inproc://zeromq.zap.01";

/** The PLAIN user name drce's clients send; any name is accepted, only the password counts. */
export const zmqPlainUsername = "drce";

/** A socket made to require the node's token; release it after the socket is closed. */
export interface SecuredSocket {
  /** The ZAP domain the socket was given (unique in the process). */
  readonly domain: string;
  /**
   * Forgets the socket's token; the ZAP handler stops when no secured socket is left.
   * Call it after `socket.close()`: while the handler runs, a PLAIN socket refuses wrong
   * passwords; without any handler libzmq would accept every password.
   */
  release(): Promise<void>;
}

type Check = (password: string) => boolean;

// Domain -> password check, for every secured socket of the process. Tests start several
// nodes in one process, and only one ZAP handler may bind per context, so it is shared.
const domains = new Map<string, Check>();
let handler: { socket: Reply; loop: Promise<void> } | undefined;
let nextDomain = 1;

/**
 * Makes a ZeroMQ server socket (ROUTER, REP, ...) require `token` with the PLAIN mechanism:
 * a client sets the PLAIN user name (any, e.g. "drce") and the token as the PLAIN password.
 * The check is drce's bearer-token comparison (constant time over SHA-256 digests). A client
 * with a wrong password fails the handshake (ZAP status 400, an ERROR command; the client's
 * monitor reports `handshake:error:auth`), and one without credentials fails it with a
 * mechanism mismatch (`handshake:error:protocol`): either way no message of that peer ever
 * reaches the socket. Call it before `bind()`.
 */
export async function secureSocket(socket: Socket, token: string): Promise<SecuredSocket> {
  if (typeof token !== "string" || token === "") throw new TypeError("secureSocket: the token must be a non-empty string");
  const domain = `drce-${process.pid}-${nextDomain++}`;
  const check = createTokenCheck(token);
  domains.set(domain, (password) => check(`Bearer ${password}`));
  try {
    await startHandler();
  } catch (error) {
    domains.delete(domain);
    throw error;
  }
  socket.zapDomain = domain;
  socket.plainServer = true;
  let released = false;
  return {
    domain,
    async release() {
      if (released) return;
      released = true;
      domains.delete(domain);
      if (domains.size === 0) await stopHandler();
    },
  };
}

async function startHandler(): Promise<void> {
  if (handler !== undefined) return;
  const socket = new Reply({ linger: 0 });
  try {
    await socket.bind(zapEndpoint);
  } catch (error) {
    socket.close();
    throw new Error(`cannot start the ZeroMQ authentication handler: ${(error as Error).message}`, { cause: error });
  }
  const loop = (async () => {
    try {
      for await (const frames of socket) await socket.send(answer(frames));
    } catch {
      // The socket was closed (stopHandler) or the context is terminating.
    }
  })();
  handler = { socket, loop };
}

async function stopHandler(): Promise<void> {
  const current = handler;
  if (current === undefined) return;
  handler = undefined;
  current.socket.close();
  await current.loop;
}

/**
 * Answers one ZAP request: [version, request id, domain, address, identity, mechanism,
 * credentials...] -> [version, request id, status code, status text, user id, metadata].
 */
function answer(frames: Buffer[]): (Buffer | string)[] {
  const [version, requestId, domainFrame, , , mechanismFrame, , password] = frames;
  const reply = (code: string, text: string, user = ""): (Buffer | string)[] => ["1.0", requestId ?? "", code, text, user, ""];
  if (version?.toString() !== "1.0") return reply("400", "unsupported ZAP version");
  const domain = domainFrame?.toString() ?? "";
  const mechanism = mechanismFrame?.toString() ?? "";
  const check = domains.get(domain);
  if (check === undefined) {
    // Not one of ours: a NULL socket with some other domain is let through as if no handler
    // were present; any other mechanism is refused rather than accepted blindly.
    return (mechanism === "NULL" ? reply("200", "OK") : reply("400", "unknown domain"));
  }
  if (mechanism !== "PLAIN" || password === undefined) return reply("400", "a token is required");
  return (check(password.toString("utf8")) ? reply("200", "OK", zmqPlainUsername) : reply("400", "wrong token"));
}
