import type { ConnectRouter } from "@connectrpc/connect";
import { setMaxListeners } from "node:events";
import { hostname } from "node:os";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { NodeService } from "../gen/drce/v1/node_service_pb.js";
import { TaskService } from "../gen/drce/v1/task_service_pb.js";
import { ClusterService, NodeReportSchema } from "../gen/drce/v1/cluster_service_pb.js";
import { create } from "@bufbuild/protobuf";
import { registerClusterMetrics } from "./cluster/cluster-metrics.js";
import { nodeTimeoutOf } from "./cluster/cluster-options.js";
import { readClusterTls } from "./cluster/cluster-tls.js";
import { createJoiner } from "./cluster/joiner.js";
import { createClusterHandler } from "./connect/cluster-handler.js";
import { memberToProto } from "./connect/cluster-convert.js";
import { hostFactsToProto, usageToProto } from "./connect/node-convert.js";
import type { ManagerNode } from "./manager-node.js";
import { createTokenCheck } from "./auth.js";
import { createBrowserGuard, parseAllowHost, parseCorsOrigin } from "./browser-guard.js";
import { type Config, parseHostPort } from "./config.js";
import { createConsoleRoute } from "./console-route.js";
import { createHealthHandler } from "./connect/health-handler.js";
import { createConnectNodeHandler } from "./connect/node-adapter.js";
import { createOutputFramesRoute } from "./connect/output-frames.js";
import { createNodeHandler } from "./connect/node-handler.js";
import { createReflectionHandlers } from "./connect/reflection-handler.js";
import { refuseUnknownEnums } from "./connect/request-enums.js";
import { stalledReaderPaths, watchStalledReader } from "./connect/stalled-reader.js";
import { createTaskHandler } from "./connect/task-handler.js";
import type { NodeIdentity } from "./core/api.js";
import { createNodeAdmin } from "./core/node-admin.js";
import type { DataNode } from "./data-node.js";
import { createAdminHandler } from "./gateway/admin.js";
import type { ReportedAddress } from "./gateway/admin-answers.js";
import { logLevelNames } from "./gateway/admin-command-table.js";
import { adminHttpPrefix, handleAdminHttp } from "./gateway/admin-http.js";
import { handleLegacyHttp, legacyHttpPath } from "./gateway/http.js";
import { createLegacyHandler } from "./gateway/legacy-handler.js";
import { createNotifier } from "./gateway/notifier.js";
import { bindZmqGateway, type BoundZmqGateway } from "./gateway/zmq.js";
import { createDualServer, type DualServerTls } from "./http-server.js";
import { listening } from "./listen-error.js";
import type { Logger } from "./logger.js";
import { createNodeMetrics, metricsHttpPath } from "./metrics.js";
import { adminRefusals, connectRefusals, createConnectTokenCheck, legacyRefusals, metricsRefusals } from "./refusal-forms.js";
import { createRouteGate } from "./route-gate.js";
import { createRouteTable, type Route } from "./route-table.js";
import type { StartList } from "./start-list.js";
import { packageVersion } from "./version.js";

/** Options of {@link serveNode}. */
export interface ServeNodeOptions {
  /** The node's validated configuration. */
  readonly config: Config;
  /** The node the listeners serve: a data node, or a manager forwarding to data nodes. */
  readonly node: DataNode | ManagerNode;
  /** Where the listeners and handlers log. */
  readonly logger: Logger;
  /** The node's start list; serving adds its parts after the data node's. */
  readonly starts: StartList;
  /** The node's PEM material, when it serves HTTPS. */
  readonly tls?: DualServerTls | undefined;
  /** Called when a legacy admin client sends SHUTDOWN. */
  readonly onShutdownRequest: () => void;
}

/** Where a served node listens. */
export interface ServedNode {
  /** The URL of the HTTP endpoint. */
  readonly url: string;
  /** The legacy ZeroMQ endpoint, "" when disabled. */
  readonly zmqEndpoint: string;
  /** The legacy ZeroMQ admin endpoint, "" when disabled. */
  readonly adminZmqEndpoint: string;
}

/**
 * Serves a data node: binds its listeners first (recorded as "http listener", "zmq listener"
 * and "admin zmq listener"), then builds every handler with the node's identity as bound
 * (port 0 resolved; the legacy identity is the admin socket's address, which the original
 * clients follow a task up at), then "metrics" and "notifier", then recovers the store
 * ("tasks"), and only then answers requests ("accepting"). Requests that arrive on a bound
 * listener before that wait: HTTP ones in the route gate, ZeroMQ ones in their socket.
 */
export async function serveNode(options: ServeNodeOptions): Promise<ServedNode> {
  const { config, node, logger, starts } = options;
  const { core } = node;
  const manager = "membership" in node ? node : undefined;
  const address = parseHostPort(config.listen, "--listen");
  const shutdown = new AbortController();
  // Every request in flight listens to it; dozens at once are normal, not a leak.
  setMaxListeners(0, shutdown.signal);

  const gate = createRouteGate();
  // SendTaskInput's request body is the task's stdin: it lasts as long as the caller has input.
  const streamingRequestPaths = new Set([`/${TaskService.typeName}/${TaskService.method.sendTaskInput.name}`]);
  const server = createDualServer({
    handler: gate.handler,
    http2Settings: { initialWindowSize: 4 * 1024 * 1024, maxFrameSize: 1024 * 1024 },
    headersTimeoutMs: config.headersTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxConnections: config.maxConnections,
    streamingRequestPaths,
    ...(options.tls === undefined ? {} : { tls: options.tls }),
  });
  const bound = await listening("--listen", config.listen, () => server.listen(address.host, address.port));
  starts.started("http listener", async () => {
    // A request still waiting for the routes (a start that failed) is answered, not held.
    gate.close();
    shutdown.abort();
    await server.close();
  });
  let zmq: BoundZmqGateway | undefined;
  if (config.zmqListen !== "") {
    zmq = await listening("--zmq-listen", config.zmqListen, () => bindZmqGateway({ endpoint: `tcp://${config.zmqListen}`, maxBodyBytes: config.maxRequestBytes, logger, token: config.token }));
    const gateway = zmq;
    starts.started("zmq listener", () => gateway.close());
  }
  let adminZmq: BoundZmqGateway | undefined;
  if (config.adminZmqListen !== "") {
    // The admin socket takes the node's token as its PLAIN password, like the data gateway, and
    // whole DRCE requests (the DRCE command), so it takes the data gateway's bound.
    adminZmq = await listening("--admin-zmq-listen", config.adminZmqListen, () => bindZmqGateway({ endpoint: `tcp://${config.adminZmqListen}`, maxBodyBytes: config.maxRequestBytes, logger, token: config.token }));
    const gateway = adminZmq;
    starts.started("admin zmq listener", () => gateway.close());
  }

  const identity: NodeIdentity = { host: address.host === "0.0.0.0" ? hostname() : address.host, port: bound.port, node: config.name };
  const legacyIdentity = reportedIdentity(identity, adminZmq?.endpoint);
  const endpoints = { zmq: zmq?.endpoint ?? "", adminZmq: adminZmq?.endpoint ?? "" };

  const admin = createNodeAdmin({ settings: config, identity, version: packageVersion(), startedAt: node.startedAt, core, role: manager === undefined ? "data" : "manager", store: node.store, stats: node.stats, reports: node.reports, host: node.host, endpoints: () => endpoints });
  const legacy = createLegacyHandler({ core, identity: legacyIdentity, logger });
  const adminHandler = createAdminHandler({
    admin,
    legacy,
    reported: legacyIdentity,
    logLevel: {
      get: () => logger.level,
      set: (level) => {
        if (!(logLevelNames as readonly string[]).includes(level)) throw new RangeError(`unknown log level ${level}`);
        logger.level = level;
      },
    },
    requestShutdown: () => {
      logger.warn({}, "shutdown requested by a legacy admin client");
      options.onShutdownRequest();
    },
    logger,
  });
  // Services the node serves, for health and reflection; a service added to the routes goes here too.
  // ClusterService is the manager's: a data node answers it (FailedPrecondition) but does not list it.
  const served = manager === undefined ? [TaskService, NodeService] : [TaskService, NodeService, ClusterService];
  const health = createHealthHandler({ services: served.map((service) => service.typeName) });
  const reflection = createReflectionHandlers([...served, Health]);
  const checkToken = createTokenCheck(config.token);
  const connect = createConnectNodeHandler({
    routes: (router: ConnectRouter) => {
      router.service(TaskService, createTaskHandler({ core, identity, firstInputMs: config.requestTimeoutMs }));
      router.service(
        NodeService,
        createNodeHandler({
          admin,
          labels: Object.fromEntries(config.labels),
          listNodes: manager === undefined ? undefined : (labels) => manager.membership.members().filter((m) => Object.entries(labels).every(([key, value]) => m.labels[key] === value)).map(memberToProto),
        }),
      );
      router.service(ClusterService, createClusterHandler({ membership: manager?.membership, manager: config.name, nodeTimeoutMs: nodeTimeoutOf(config) }));
      router.service(Health, health.impl);
      router.service(ServerReflectionV1, reflection.v1);
      router.service(ServerReflectionV1alpha, reflection.v1alpha);
    },
    // Health stays open so that load balancers and orchestrators can probe without the token;
    // the token is checked before the request's enums, so an unauthenticated caller learns nothing.
    interceptors: [createConnectTokenCheck(checkToken, [Health.typeName]), refuseUnknownEnums],
    readMaxBytes: config.maxRequestBytes,
    shutdownSignal: shutdown.signal,
    onHandlerError: (method, error) => logger.error({ method, err: error instanceof Error ? error.stack : String(error) }, "a Connect handler failed"),
  });

  // RunTask and StreamTaskOutput in binary Connect streaming and gRPC: output written without a copy.
  const outputFrames = createOutputFramesRoute({
    core,
    identity,
    checkToken,
    readMaxBytes: config.maxRequestBytes,
    shutdownSignal: shutdown.signal,
    onHandlerError: (method, error) => logger.error({ method, err: error instanceof Error ? error.stack : String(error) }, "a Connect handler failed"),
  });

  // Both follow the event log from here, before recovery, so the events of recovered tasks are counted and sent.
  const notifier =
    config.notifyUrl === ""
      ? undefined
      : createNotifier({ url: config.notifyUrl, token: config.notifyToken, events: core.events, reports: config.notifyReports ? node.reports : undefined, identity: legacyIdentity, timeoutMs: config.notifyTimeoutMs, retryMaxMs: config.notifyRetryMaxMs, logger });
  const metrics = createNodeMetrics({ core, host: node.host, notifications: notifier?.counts, ...("internalErrors" in node ? { internalErrors: node.internalErrors.counts } : {}) });
  starts.started("metrics", () => metrics.close());
  if (manager !== undefined) {
    const clusterMetrics = registerClusterMetrics(metrics.registry, manager.membership);
    manager.onDispatch((name, ms) => clusterMetrics.dispatched(name, ms));
  }
  // The final states the shutdown wrote still reach a receiver that is up, within a bound.
  if (notifier !== undefined) starts.started("notifier", () => notifier.close(Math.min(2000, config.shutdownGraceMs)));

  await node.recover();
  // Calls already in flight when the node closes get their tasks' final states.
  starts.started("tasks", () => core.shutdown(config.shutdownGraceMs));

  const legacyRoutes = legacyRefusals(legacy);
  const routes: Route[] = [
    { name: "legacy", matches: (path) => path === legacyHttpPath, protocol: legacyRoutes, guard: "token", handle: (req, res) => void handleLegacyHttp(legacy, req, res, { maxBodyBytes: config.maxRequestBytes }) },
    { name: "metrics", matches: (path) => path === metricsHttpPath, protocol: metricsRefusals(), guard: "token", handle: (req, res) => void metrics.serve(req, res) },
    { name: "admin", matches: (path) => path.startsWith(adminHttpPrefix) || `${path}/` === adminHttpPrefix, protocol: adminRefusals(adminHandler), guard: "token", handle: (req, res) => void handleAdminHttp(adminHandler, req, res) },
    // The web console's page and assets; the API it calls is the Connect route below, behind the token.
    createConsoleRoute(),
    {
      name: "connect",
      matches: () => true,
      protocol: connectRefusals(),
      guard: "in-protocol",
      handle: (req, res, path) => {
        if (stalledReaderPaths.has(path)) {
          watchStalledReader(res, { stalledMs: config.stalledReaderMs, onDrop: () => logger.warn({ path }, "dropped a stream reader that accepted nothing") });
        }
        if (!outputFrames(req, res)) connect(req as never, res as never);
      },
    },
  ];
  const browserGuard = createBrowserGuard({
    listenHost: address.host,
    allowHosts: config.allowHosts.map(parseAllowHost),
    corsOrigins: config.corsOrigins.map(parseCorsOrigin),
    secure: options.tls !== undefined,
  });
  gate.open(createRouteTable({ routes, browserGuard, checkToken }));
  zmq?.serve(legacy);
  adminZmq?.serve(adminHandler.text);
  starts.started("accepting", () => {
    health.state.setNotServing();
    // Refuse new connections first; calls already in flight get their tasks' final states.
    server.stopAccepting();
  });

  const shownHost = bound.host.includes(":") ? `[${bound.host}]` : bound.host;
  const url = `${options.tls === undefined ? "http" : "https"}://${shownHost}:${bound.port}`;
  if (config.join !== "" && manager === undefined) {
    const clusterTls = readClusterTls(config);
    const joiner = createJoiner({
      managerUrl: config.join,
      token: config.joinToken === "" ? config.token : config.joinToken,
      ...(clusterTls === undefined ? {} : { tls: clusterTls }),
      name: config.name,
      // A node listening on every address is reached at its host name unless it says otherwise.
      url: config.advertiseUrl !== "" ? config.advertiseUrl : url.replace("//0.0.0.0:", `//${hostname()}:`),
      labels: Object.fromEntries(config.labels),
      heartbeatMs: config.heartbeatMs,
      report: () => {
        const reading = admin.usage();
        const { active } = node.core.slots;
        return create(NodeReportSchema, { usage: usageToProto(reading.usage), balancing: reading.balancing, freeSlots: Math.max(0, config.maxConcurrent - active), running: active, sampledAtMs: BigInt(reading.snapshot.sampledAt) });
      },
      facts: async () => hostFactsToProto(await admin.hostFacts(), packageVersion()),
      logger,
    });
    starts.started("joiner", () => joiner.close());
  }
  logger.info({ url, zmq: zmq?.endpoint, adminZmq: adminZmq?.endpoint, dataDir: config.dataDir, name: config.name }, "drce node listening");
  return { url, zmqEndpoint: endpoints.zmq, adminZmqEndpoint: endpoints.adminZmq };
}

/**
 * The address legacy result items report: the admin socket's when there is one (the
 * protocol's node_port, which the original clients follow a task up at), else the HTTP
 * endpoint's. A new object: DRCE_SET_HOST and DRCE_SET_PORT change it, and only it.
 */
function reportedIdentity(identity: NodeIdentity, adminEndpoint: string | undefined): ReportedAddress & NodeIdentity {
  if (adminEndpoint === undefined) return { ...identity };
  const admin = parseHostPort(adminEndpoint.replace(/^tcp:\/\//, ""), "--admin-zmq-listen");
  return { host: admin.host === "0.0.0.0" || admin.host === "*" ? hostname() : admin.host, port: admin.port, node: identity.node };
}
