import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { createServiceClient, type ServiceClient, type ServiceClientOptions } from "../client/service-client.js";
import { UsageError } from "./errors.js";
import { defaultServer } from "./options.js";

export { createServiceClient, receiveWindowBytes, type ClientTls, type ServiceClient, type TransportState } from "../client/service-client.js";

/** A TaskService client and the connection it holds. */
export type TaskClient = ServiceClient<typeof TaskService>;

/** Options of {@link createTaskClient}: those of the shared client factory. */
export type TaskClientOptions = ServiceClientOptions;

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
  // The API lives at the root; a path (often the legacy /drce) would only meet 404s.
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "") {
    throw new UsageError(`--server ${server}: a node's URL has no path, the API is at its root (use ${url.protocol}//${url.host})`);
  }
  return server;
}

/** Creates a Connect client of TaskService over its own HTTP/2 connection (see {@link createServiceClient}). */
export function createTaskClient(options: TaskClientOptions): TaskClient {
  return createServiceClient(TaskService, options);
}

