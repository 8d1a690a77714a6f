import { Code, ConnectError } from "@connectrpc/connect";
import { ClusterService, type NodeReport } from "../../gen/drce/v1/cluster_service_pb.js";
import type { HostFacts } from "../../gen/drce/v1/node_service_pb.js";
import { createServiceClient, type ClientTls } from "../client/service-client.js";
import type { Logger } from "../logger.js";

/** Options of {@link createJoiner}. */
export interface JoinerOptions {
  /** Base URL of the manager (--join). */
  readonly managerUrl: string;
  /** The cluster token sent to the manager (--join-token, default the node's --token); empty sends none. */
  readonly token: string;
  /** PEM material for an https:// manager. */
  readonly tls?: ClientTls;
  /** The node's name (--name). */
  readonly name: string;
  /** The URL the manager reaches the node at (--advertise-url, else its listen address). */
  readonly url: string;
  /** The node's labels (--label key=value). */
  readonly labels: Readonly<Record<string, string>>;
  /** Interval of the heartbeats, ms (--heartbeat-ms). */
  readonly heartbeatMs: number;
  /** The node's load now, from its cached host sample and its slots (no I/O). */
  readonly report: () => NodeReport;
  /** The node's host facts (read once, then kept). */
  readonly facts: () => Promise<HostFacts>;
  readonly logger: Logger;
}

/** A data node's membership of a manager's cluster. */
export interface Joiner {
  /** Stops the heartbeats and closes the connection. */
  close(): void;
}

/**
 * Joins a data node to a manager (the active mode): RegisterNode with its name, URL, labels,
 * facts and first report, then a Heartbeat with a report every --heartbeat-ms. A manager that
 * does not know the node (it lost it, or restarted without it) answers NotFound and the node
 * registers again; a manager that cannot be reached is tried again at the next beat, so a
 * node started before its manager joins once the manager is up.
 */
export function createJoiner(options: JoinerOptions): Joiner {
  const { logger, heartbeatMs } = options;
  if (!(heartbeatMs > 0)) throw new TypeError("createJoiner: heartbeatMs must be positive");
  const handle = createServiceClient(ClusterService, { server: options.managerUrl, token: options.token, ...(options.tls === undefined ? {} : { tls: options.tls }), connectTimeoutMs: Math.max(1000, heartbeatMs) });
  const stop = new AbortController();
  let registered = false;
  // The last failure logged, so that a manager that stays away is reported once, not every beat.
  let lastFailure = "";
  const callOptions = () => ({ signal: stop.signal, timeoutMs: Math.max(1000, heartbeatMs) });

  const beat = async (): Promise<void> => {
    try {
      if (!registered) {
        const reply = await handle.client.registerNode({ name: options.name, url: options.url, labels: { ...options.labels }, facts: await options.facts(), report: options.report(), heartbeatMs }, callOptions());
        registered = true;
        lastFailure = "";
        logger.info({ manager: options.managerUrl, managerName: reply.manager, name: options.name, url: options.url, nodeTimeoutMs: reply.nodeTimeoutMs }, "joined the manager's cluster");
        return;
      }
      await handle.client.heartbeat({ name: options.name, report: options.report() }, callOptions());
      lastFailure = "";
    } catch (error) {
      if (stop.signal.aborted) return;
      const connectError = ConnectError.from(error);
      if (connectError.code === Code.NotFound) registered = false;
      const failure = `${Code[connectError.code]}: ${connectError.rawMessage}`;
      if (failure !== lastFailure) {
        lastFailure = failure;
        const level = connectError.code === Code.Unauthenticated || connectError.code === Code.FailedPrecondition || connectError.code === Code.AlreadyExists ? "error" : "warn";
        logger[level]({ manager: options.managerUrl, code: Code[connectError.code], err: connectError.rawMessage }, registered ? "a heartbeat to the manager failed" : "could not join the manager's cluster; trying again at the next heartbeat");
      }
    }
  };

  let timer: NodeJS.Timeout | undefined;
  const loop = (): void => {
    void beat().finally(() => {
      if (!stop.signal.aborted) timer = setTimeout(loop, registered ? heartbeatMs : Math.min(heartbeatMs, 1000));
    });
  };
  loop();
  return {
    close() {
      stop.abort();
      clearTimeout(timer);
      handle.close();
    },
  };
}
