import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { type Config, ConfigError, validateConfig } from "./config.js";
import { createDataNode, type DataNode, type DataNodeCore } from "./data-node.js";
import type { ResourceLog } from "./core/resource-log.js";
import { createLogger, type Logger } from "./logger.js";
import { createManagerNode, type ManagerNode } from "./manager-node.js";
import { serveNode } from "./node-server.js";
import { createStartList } from "./start-list.js";

export { ListenError } from "./listen-error.js";

/** A node, built but not yet listening. */
export interface App {
  /** The node's configuration. */
  readonly config: Config;
  /** The task core (for tests and embedding). */
  readonly core: DataNodeCore;
  /** Resource reports (legacy 101), one per host sample. */
  readonly reports: ResourceLog;
  /** Settles when an admin client sent SHUTDOWN: whoever runs the node then closes it. */
  readonly shutdownRequested: Promise<void>;
  /**
   * Binds the listeners, recovers the store and starts answering; returns the URL of the HTTP
   * endpoint and the ZeroMQ endpoints ("" when disabled). Called once.
   */
  listen(): Promise<{ url: string; zmqEndpoint: string; adminZmqEndpoint: string }>;
  /** The names of the parts started so far, in start order (a subsequence of {@link nodeStartOrder}). */
  readonly started: readonly string[];
  /** Stops every part started so far in the reverse order of their start (see {@link nodeStartOrder}). */
  close(): Promise<void>;
}

/** Options besides the configuration, for embedding and tests. */
export interface AppOptions {
  /** Logger to use instead of one made from config.logLevel. */
  readonly logger?: Logger;
  /** Test-only: crash the node at a write point (see TaskStoreOptions.crashAt). */
  readonly crashAt?: string;
}

/**
 * The parts of a fully started node in the order they start; closing stops them in the
 * reverse order: stop accepting, end the tasks within the grace period (calls in flight get
 * their final states), let the notifier deliver them, stop the metrics, close the listeners,
 * then the host sampler, the runners and the store. Parts that are not configured (a ZeroMQ
 * socket, the notifier) are left out.
 */
export const nodeStartOrder = ["store", "runners", "host sampler", "http listener", "zmq listener", "admin zmq listener", "metrics", "notifier", "tasks", "accepting"] as const;

/**
 * The composition root: builds the data node (store, runners, host sampler, task core) from
 * the configuration; `listen()` then serves it (see serveNode), and `close()` stops what was
 * started, in reverse.
 */
export async function createApp(config: Config, appOptions: AppOptions = {}): Promise<App> {
  validateConfig(config);
  const tls = config.tlsCert === "" ? undefined : readTlsFiles(config);
  const logger = appOptions.logger ?? createLogger(config.logLevel);
  const starts = createStartList();
  // A manager runs no task itself: its core forwards to data nodes, behind the same listeners.
  const node: DataNode | ManagerNode = config.role === "manager" ? await createManagerNode({ config, logger, starts }) : await createDataNode({ config, logger, starts, crashAt: appOptions.crashAt });
  let onShutdownRequest: () => void = () => undefined;
  const shutdownRequested = new Promise<void>((resolve) => (onShutdownRequest = resolve));
  let served: ReturnType<typeof serveNode> | undefined;
  return {
    config,
    // Embedders and tests of a data node reach its core; a manager's is its forwarding core.
    core: node.core as DataNodeCore,
    reports: node.reports,
    shutdownRequested,
    get started() {
      return starts.names;
    },
    listen() {
      served ??= serveNode({ config, node, logger, starts, tls, onShutdownRequest });
      return served.then((endpoints) => ({ ...endpoints }));
    },
    close: () => starts.close(),
  };
}

/** Reads the node's PEM files once at start-up, naming the flag whose file cannot be read. */
function readTlsFiles(config: Config): { cert: Buffer; key: Buffer; ca?: Buffer } {
  const read = (file: string, flag: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new ConfigError(`${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? "cannot be read"}`, { cause: error });
    }
  };
  const cert = read(config.tlsCert, "--tls-cert");
  const key = read(config.tlsKey, "--tls-key");
  const files = config.tlsClientCa === "" ? { cert, key } : { cert, key, ca: read(config.tlsClientCa, "--tls-client-ca") };
  try {
    // Fails now, with the reason, on a file that is not PEM or a key that does not match.
    createSecureContext(files);
  } catch (error) {
    throw new ConfigError(`--tls-cert/--tls-key/--tls-client-ca: ${(error as Error).message}`, { cause: error });
  }
  return files;
}
