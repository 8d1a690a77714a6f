import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import type { SecureClientSessionOptions } from "node:http2";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";

/** Transport options of a test client: a bearer token, TLS material, the wire protocol. */
export interface TestClientOptions {
  readonly token?: string;
  readonly tls?: SecureClientSessionOptions;
  readonly protocol?: "connect" | "grpc";
}

/** A client of any service of the node at url; `close()` ends its HTTP/2 session. */
export function clientFor<S extends DescService>(service: S, url: string, options: TestClientOptions = {}): { client: Client<S>; close(): void } {
  const interceptors: Interceptor[] = [];
  if (options.token !== undefined) {
    const header = `Bearer ${options.token}`;
    interceptors.push((next) => (request) => {
      request.header.set("authorization", header);
      return next(request);
    });
  }
  const sessionManager = new Http2SessionManager(url, undefined, options.tls);
  const make = options.protocol === "grpc" ? createGrpcTransport : createConnectTransport;
  const transport = make({ baseUrl: url, httpVersion: "2", sessionManager, interceptors });
  return { client: createClient(service, transport), close: () => sessionManager.abort() };
}

/** A TaskService client sending the given token. */
export function taskClient(url: string, token: string): Client<typeof TaskService> {
  return clientFor(TaskService, url, { token }).client;
}
