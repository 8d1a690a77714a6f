import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ClusterService } from "../../gen/drce/v1/cluster_service_pb.js";
import { NodeService } from "../../gen/drce/v1/node_service_pb.js";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";

/** The typed clients of the node that served the page: the console's only way to its data. */
export interface Api {
  /** Tasks: submit, run, watch, stream output, kill, fetch, delete. */
  readonly tasks: Client<typeof TaskService>;
  /** The node itself: info, statistics, resource reports, host facts, and a manager's nodes. */
  readonly nodes: Client<typeof NodeService>;
  /** The manager's cluster membership (a data node refuses it with FailedPrecondition). */
  readonly cluster: Client<typeof ClusterService>;
}

/** What the node that served the page says about itself (`GetNodeInfo`). */
export interface NodeSelf {
  /** "manager" for a manager, "data" for a node that runs tasks itself. */
  readonly role: "data" | "manager";
  /** The node's name, as in task results. */
  readonly name: string;
  /** The node's drce version. */
  readonly version: string;
}

/**
 * Creates the clients of the node at `baseUrl` (the page's own origin by default) over
 * Connect-Web, with the token as the bearer of every call. An empty token sends no
 * Authorization header, for a node that has none set.
 */
export function createApi(token: string, baseUrl: string = location.origin): Api {
  const bearer: Interceptor = (next) => async (request) => {
    if (token !== "") request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  };
  // Binary: a list of 10,000 tasks is encoded and decoded several times faster than as JSON.
  const transport = createConnectTransport({ baseUrl, interceptors: [bearer], useBinaryFormat: true });
  return { tasks: createClient(TaskService, transport), nodes: createClient(NodeService, transport), cluster: createClient(ClusterService, transport) };
}

/** The outcome of {@link signIn}: the node's answer, or why it refused. */
export type SignIn = { readonly kind: "ok"; readonly api: Api; readonly node: NodeSelf } | { readonly kind: "refused"; readonly message: string };

/**
 * Tries a token against the node (`GetNodeInfo`, which the token guards): resolves with the
 * clients and the node's description, or with a sentence saying why it was refused. Errors
 * other than a refusal (the node is down) reject.
 */
export async function signIn(token: string, baseUrl?: string): Promise<SignIn> {
  const api = createApi(token, baseUrl);
  try {
    const { info } = await api.nodes.getNodeInfo({});
    return { kind: "ok", api, node: { role: info?.role === "manager" ? "manager" : "data", name: info?.name ?? "", version: info?.version ?? "" } };
  } catch (error) {
    const refused = ConnectError.from(error);
    if (refused.code === Code.Unauthenticated) return { kind: "refused", message: token === "" ? "This node needs its token." : "The node refused this token: it is not the node's --token." };
    if (refused.code === Code.PermissionDenied) return { kind: "refused", message: `The node refused this page: ${refused.rawMessage}` };
    throw refused;
  }
}

/** The clients of the signed-in console; provided by the app once the token is accepted. */
export const ApiContext = createContext<Api | undefined>(undefined);

/** What the node said about itself; provided with {@link ApiContext}. */
export const NodeContext = createContext<NodeSelf | undefined>(undefined);

/** The node's clients, inside the signed-in app. Throws outside it (a mistake in the app). */
export function useApi(): Api {
  const api = useContext(ApiContext);
  if (api === undefined) throw new Error("useApi() is used outside the signed-in console");
  return api;
}

/** What the node that served the page said about itself, inside the signed-in app. */
export function useNode(): NodeSelf {
  const node = useContext(NodeContext);
  if (node === undefined) throw new Error("useNode() is used outside the signed-in console");
  return node;
}

/** A sentence for any error a call rejected with, for the page to show. */
export function errorText(error: unknown): string {
  const failure = ConnectError.from(error);
  return `${Code[failure.code] ?? "Error"}: ${failure.rawMessage}`;
}
