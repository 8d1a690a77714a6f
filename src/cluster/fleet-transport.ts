import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { NodeService } from "../../gen/drce/v1/node_service_pb.js";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { createNodeConnection, type ClientTls, type NodeConnection } from "../client/service-client.js";

/** A data node as the transport reaches it: its name in the cluster and its base URL. */
export interface NodeAddress {
  /** Node name, unique in the cluster. */
  readonly name: string;
  /** Base URL of its Connect endpoint (http:// or https://, no path). */
  readonly url: string;
}

/**
 * What is known of a request that failed on its way to a node:
 * - "not-delivered": the connection failed before the request was written (refused, no such
 *   host, no route, a TLS handshake the node or the manager refused), so the node provably
 *   never saw it; a submission may then go to another node;
 * - "answered": the node answered with an error of its own (it saw the request, refused it);
 * - "unknown": the connection broke after the request was sent; the node may have accepted it.
 */
export type Delivery = "not-delivered" | "answered" | "unknown";

/**
 * How a manager reaches its data nodes: generated clients of TaskService and NodeService per
 * node. It knows nothing of placement, routing, rate control or the legacy protocol, so that
 * another transport (a message bus) can take its place.
 */
export interface FleetTransport {
  /** The TaskService client of a node. */
  tasks(node: NodeAddress): Client<typeof TaskService>;
  /** The NodeService client of a node. */
  nodes(node: NodeAddress): Client<typeof NodeService>;
  /** What is known of a failed call's request (see {@link Delivery}). */
  delivery(error: unknown): Delivery;
  /** Drops the connection to a node (its URL changed, or it left). */
  forget(name: string): void;
  /** Closes every connection. */
  close(): void;
}

/** Options of {@link createDirectTransport}: how the manager authenticates to its nodes, as the CLI does. */
export interface DirectTransportOptions {
  /** Bearer token sent to every node; empty sends none. */
  readonly token: string;
  /** PEM material for https:// nodes. */
  readonly tls?: ClientTls;
  /** Milliseconds a node may take to answer a new connection; zero: no bound. */
  readonly connectTimeoutMs?: number;
}

/**
 * Error codes of a connection that failed before any byte of a request went out: the TCP
 * connect or the name lookup failed, or the TLS handshake did (certificate checks included).
 */
const notDeliveredCodes = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EAI_NONAME", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "ERR_TLS_CERT_ALTNAME_INVALID", "DEPTH_ZERO_SELF_SIGNED_CERT", "SELF_SIGNED_CERT_IN_CHAIN", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "CERT_HAS_EXPIRED", "ERR_SSL_WRONG_VERSION_NUMBER"]);

/** Codes a Connect call ends with when the transport, not the node, failed it. */
const transportCodes = new Set([Code.Unavailable, Code.Unknown, Code.Canceled, Code.Aborted, Code.DeadlineExceeded, Code.Internal]);

/**
 * Reads what is known of a failed call's request from its error: "not-delivered" when the
 * cause chain holds a connection error of {@link notDeliveredCodes}, "answered" when the node
 * sent an error code of its own (its `drce-error-code` metadata, or a code only a server
 * sends), else "unknown".
 */
export function deliveryOf(error: unknown): Delivery {
  for (let cause: unknown = error, depth = 0; cause !== undefined && cause !== null && depth < 8; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string" && notDeliveredCodes.has(code)) return "not-delivered";
    cause = (cause as { cause?: unknown }).cause;
  }
  const connectError = ConnectError.from(error);
  if (connectError.metadata.has("drce-error-code")) return "answered";
  return transportCodes.has(connectError.code) ? "unknown" : "answered";
}

/**
 * The direct fleet transport: generated Connect clients over HTTP/2 (gRPC-compatible Connect
 * protocol), one pooled connection per node, made at first use and reused by every call and
 * stream to that node; the token and TLS material of the CLI.
 */
export function createDirectTransport(options: DirectTransportOptions): FleetTransport {
  if (typeof options.token !== "string") throw new TypeError("createDirectTransport: token must be a string");
  const connections = new Map<string, { url: string; connection: NodeConnection; tasks: Client<typeof TaskService>; nodes: Client<typeof NodeService> }>();
  const entry = (node: NodeAddress) => {
    let held = connections.get(node.name);
    if (held !== undefined && held.url !== node.url) {
      held.connection.close();
      held = undefined;
    }
    if (held === undefined) {
      const connection = createNodeConnection({ server: node.url, token: options.token, ...(options.tls === undefined ? {} : { tls: options.tls }), connectTimeoutMs: options.connectTimeoutMs ?? 0 });
      held = { url: node.url, connection, tasks: connection.client(TaskService), nodes: connection.client(NodeService) };
      connections.set(node.name, held);
    }
    return held;
  };
  return {
    tasks: (node) => entry(node).tasks,
    nodes: (node) => entry(node).nodes,
    delivery: deliveryOf,
    forget(name) {
      connections.get(name)?.connection.close();
      connections.delete(name);
    },
    close() {
      for (const held of connections.values()) held.connection.close();
      connections.clear();
    },
  };
}
