import http from "node:http";
import type { AddressInfo } from "node:net";

/** One POST a {@link Receiver} took. */
export interface ReceivedPost {
  /** The status it answered with. */
  readonly status: number;
  /** The Authorization header, if any. */
  readonly authorization: string | undefined;
  /** The parsed JSON body. */
  readonly body: unknown;
}

/** A notification receiver on 127.0.0.1 for tests: records every POST and answers as told. */
export interface Receiver {
  /** Its URL (the port stays the same across stop() and start()). */
  readonly url: string;
  readonly port: number;
  /** Every POST, in arrival order, whatever the answer. */
  readonly posts: ReceivedPost[];
  /** Items of the POSTs answered 2xx, flattened, in arrival order. */
  accepted(): Record<string, unknown>[];
  /** Decides the status of each POST (200 unless set). */
  answer: (post: { readonly index: number; readonly body: unknown }) => number;
  /** Stops listening and drops every connection. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

/** Starts a receiver on 127.0.0.1 (port 0 unless given). */
export async function startReceiver(port = 0): Promise<Receiver> {
  const posts: ReceivedPost[] = [];
  let server: http.Server | undefined;
  const receiver: Receiver = {
    url: "",
    port,
    posts,
    accepted: () => posts.filter((p) => p.status >= 200 && p.status < 300).flatMap((p) => (Array.isArray(p.body) ? (p.body as Record<string, unknown>[]) : [])),
    answer: () => 200,
    async stop() {
      const s = server;
      server = undefined;
      if (s === undefined) return;
      const closed = new Promise<void>((resolve) => s.close(() => resolve()));
      s.closeAllConnections();
      await closed;
    },
    async start() {
      const s = http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on("data", (chunk: Buffer) => chunks.push(chunk));
        req.on("end", () => {
          let body: unknown;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
          } catch {
            body = undefined;
          }
          const status = req.method === "POST" ? receiver.answer({ index: posts.length, body }) : 405;
          posts.push({ status, authorization: req.headers["authorization"], body });
          res.statusCode = status;
          res.end();
        });
      });
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen(receiver.port, "127.0.0.1", () => resolve());
      });
      server = s;
      const bound = (s.address() as AddressInfo).port;
      Object.assign(receiver, { port: bound, url: `http://127.0.0.1:${bound}/notify` });
    },
  };
  await receiver.start();
  return receiver;
}
