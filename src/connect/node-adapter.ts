import { Code, ConnectError, createConnectRouter } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse, type ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import type http from "node:http";
import type http2 from "node:http2";
import { refuseMalformedBinary } from "./malformed-requests.js";

/** Options of {@link createConnectNodeHandler}. */
export interface ConnectNodeHandlerOptions extends Omit<ConnectNodeAdapterOptions, "fallback" | "requestPathPrefix" | "contextValues"> {
  /** Called when a handler fails outside its RPC (a broken response stream); for the node's log. */
  readonly onHandlerError?: (method: string, error: unknown) => void;
}

/**
 * The node's Connect, gRPC and gRPC-Web request handler: connect-node's adapter, with every
 * method's request body checked by {@link refuseMalformedBinary}, so that a malformed
 * binary message is InvalidArgument (legacy 103), never Internal. Paths it does not serve
 * get 404.
 */
export function createConnectNodeHandler(options: ConnectNodeHandlerOptions): (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void {
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options });
  options.routes(router);
  const readMaxBytes = options.readMaxBytes ?? 0xffffffff;
  const paths = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) paths.set(handler.requestPath, refuseMalformedBinary(handler, readMaxBytes));
  return (req, res) => {
    const handler = paths.get((req.url ?? "").split("?", 2)[0] ?? "");
    if (handler === undefined) {
      res.writeHead(404);
      res.end();
      return;
    }
    const request = universalRequestFromNodeRequest(req as never, res as never, undefined, undefined);
    handler(request)
      .then((response) => universalResponseToNodeResponse(response, res as never))
      .catch((reason: unknown) => {
        // An aborted call (the caller went away) is not a failure of the node.
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.onHandlerError?.(`${handler.service.typeName}/${handler.method.name}`, reason);
      });
  };
}
