import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

/** A Connect server on 127.0.0.1 whose handlers a test writes (a manager's replies, scripted). */
export interface ScriptedServer {
  /** Base URL, http://127.0.0.1:PORT. */
  readonly url: string;
  /** Closes every connection and stops listening. */
  close(): Promise<void>;
}

/**
 * Starts a cleartext HTTP/2 server on 127.0.0.1, port 0, serving the routes given with
 * connect-node's adapter: a real server a real `drce` process talks to, for replies no node
 * could be made to give on demand.
 */
export async function startScriptedServer(routes: (router: ConnectRouter) => void): Promise<ScriptedServer> {
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer(connectNodeAdapter({ routes }));
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) session.destroy();
        server.close(() => resolve());
      }),
  };
}
