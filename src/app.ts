import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { setMaxListeners } from "node:events";
import { hostname } from "node:os";
import { TaskService } from "../gen/drce/v1/task_service_pb.js";
import { createTokenCheck } from "./auth.js";
import { type Config, parseHostPort, validateConfig } from "./config.js";
import { createTaskHandler } from "./connect/task-handler.js";
import type { NodeIdentity } from "./core/api.js";
import { createTaskCore } from "./core/task-core.js";
import { ResourceLog } from "./core/resource-log.js";
import { createLocalRunner } from "./executor/local-runner.js";
import { createSshRunner } from "./executor/ssh/ssh-runner.js";
import { createDualServer, type DualHandler } from "./http-server.js";
import { createLogger, type Logger } from "./logger.js";
import { createTaskStore } from "./store/task-store.js";
import { stateNames } from "./domain/states.js";
import { createHostSampler, hostFields } from "./executor/host-sampler.js";
import { checkRunLimits, checkStartLimits } from "./executor/limits.js";
import { directoryBytes } from "./executor/process-usage.js";
import { createLegacyHandler } from "./gateway/legacy-handler.js";
import { handleLegacyHttp, legacyHttpPath } from "./gateway/http.js";
import { createZmqGateway, type ZmqGateway } from "./gateway/zmq.js";

/** A node, built but not yet listening. */
export interface App {
  /** The node's configuration. */
  readonly config: Config;
  /** The task core (for tests and embedding). */
  readonly core: ReturnType<typeof createTaskCore>;
  /** Resource reports (legacy 101), one per host sample. */
  readonly reports: ResourceLog;
  /** Starts listening; returns the URL of the HTTP endpoint and the ZeroMQ endpoint. */
  listen(): Promise<{ url: string; zmqEndpoint: string }>;
  /** Stops listening, terminates running tasks within the grace period, and closes. */
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
 * The composition root: builds the store, runners, core, Connect routes and gateways of a
 * node from its configuration. Nothing listens until `listen()`.
 */
export async function createApp(config: Config, appOptions: AppOptions = {}): Promise<App> {
  validateConfig(config);
  const logger = appOptions.logger ?? createLogger(config.logLevel);
  const store = await createTaskStore({ dataDir: config.dataDir, crashAt: appOptions.crashAt ?? process.env["DRCE_TEST_CRASH_AT"] });
  const address = parseHostPort(config.listen, "--listen");
  const identity: { -readonly [K in keyof NodeIdentity]: NodeIdentity[K] } = { host: address.host === "0.0.0.0" ? hostname() : address.host, port: address.port, node: config.name };

  const host = createHostSampler({
    intervalMs: Math.max(config.sampleIntervalMs, 1000),
    diskPath: config.dataDir,
    onError: (error) => logger.warn({ err: String(error) }, "host sample failed"),
    onSample: (snapshot) => reports.publish(snapshot),
  });
  const reports = new ResourceLog(config.reportHistory);
  await host.refresh();
  host.start();

  const sshRunner = createSshRunner({ knownHostsFile: config.sshKnownHosts, trustOnFirstUse: config.sshTrustOnFirstUse });
  const core = createTaskCore({
    store,
    localRunner: createLocalRunner(),
    sshRunner,
    maxConcurrent: config.maxConcurrent,
    maxQueue: config.maxQueue,
    maxOutputBytes: config.maxOutputBytes,
    maxTaskMs: config.maxTaskMs,
    maxFileBytes: config.maxFileBytes,
    allowedDirs: config.allowedDirs,
    allowEnv: config.allowEnv,
    eventHistory: config.eventHistory,
    sampleIntervalMs: config.sampleIntervalMs,
    resources: {
      checkStart: (spec) => checkStartLimits(spec.limits, host.current()),
      checkRun: (spec, usage) => checkRunLimits(spec.limits, usage, host.current()),
      directoryBytes: (dir) => directoryBytes(dir),
      hostFields: () => hostFields(host.current()),
    },
    onEvent: (event) => {
      const s = event.status;
      logger.info({ task: s.id, alias: s.alias || undefined, state: s.state, stateName: stateNames[s.state], exitStatus: s.exitStatus, errorCode: s.errorCode || undefined, durationMs: event.timeMs }, "task state");
    },
  });
  const { recovered, loaded } = await core.init();
  if (recovered > 0) logger.warn({ recovered }, "tasks left unfinished by a previous run were marked crashed");
  logger.debug({ loaded }, "task store loaded");

  const checkToken = createTokenCheck(config.token);
  const auth: Interceptor = (next) => async (request) => {
    if (!checkToken(request.header.get("authorization"))) throw new ConnectError("missing or wrong bearer token", Code.Unauthenticated);
    return next(request);
  };
  const shutdown = new AbortController();
  // Every request in flight listens to it; dozens at once are normal, not a leak.
  setMaxListeners(0, shutdown.signal);
  const connect = connectNodeAdapter({
    routes: (router: ConnectRouter) => {
      router.service(TaskService, createTaskHandler({ core, identity }));
    },
    interceptors: [auth],
    readMaxBytes: config.maxRequestBytes,
    shutdownSignal: shutdown.signal,
  });
  const legacy = createLegacyHandler({ core, identity, logger });
  const handler: DualHandler = (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === legacyHttpPath) {
      if (!checkToken(req.headers["authorization"])) {
        res.statusCode = 401;
        res.setHeader("content-type", "application/json");
        res.setHeader("www-authenticate", "Bearer");
        res.end(legacy.errorReply(0, "missing or wrong bearer token").body);
        return;
      }
      void handleLegacyHttp(legacy, req, res, { maxBodyBytes: config.maxRequestBytes });
      return;
    }
    connect(req as never, res as never);
  };
  const server = createDualServer({
    handler,
    http2Settings: { initialWindowSize: 4 * 1024 * 1024, maxFrameSize: 1024 * 1024 },
  });

  let zmq: ZmqGateway | undefined;
  let closed = false;
  return {
    config,
    core,
    reports,
    async listen() {
      const bound = await server.listen(address.host, address.port);
      identity.port = bound.port;
      const host = bound.host.includes(":") ? `[${bound.host}]` : bound.host;
      const url = `http://${host}:${bound.port}`;
      if (config.zmqListen !== "") {
        zmq = await createZmqGateway({ handler: legacy, endpoint: `tcp://${config.zmqListen}`, maxBodyBytes: config.maxRequestBytes, logger });
      }
      logger.info({ url, zmq: zmq?.endpoint, dataDir: config.dataDir, name: config.name }, "drce node listening");
      return { url, zmqEndpoint: zmq?.endpoint ?? "" };
    },
    async close() {
      if (closed) return;
      closed = true;
      await core.shutdown(config.shutdownGraceMs);
      shutdown.abort();
      await Promise.all([server.close(), zmq?.close()]);
      host.stop();
      await sshRunner.close();
    },
  };
}
