import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { mkdirSync, readFileSync } from "node:fs";
import { setMaxListeners } from "node:events";
import { hostname } from "node:os";
import { join } from "node:path";
import { createSecureContext } from "node:tls";
import { TaskService } from "../gen/drce/v1/task_service_pb.js";
import { createTokenCheck } from "./auth.js";
import { createBrowserGuard, parseAllowHost, parseCorsOrigin, type BrowserVerdict } from "./browser-guard.js";
import { type Config, ConfigError, parseHostPort, validateConfig } from "./config.js";
import { createTaskHandler } from "./connect/task-handler.js";
import { createConnectNodeHandler } from "./connect/node-adapter.js";
import { refuseUnknownEnums } from "./connect/request-enums.js";
import { createHealthHandler } from "./connect/health-handler.js";
import { createReflectionHandlers } from "./connect/reflection-handler.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { stalledReaderPaths, watchStalledReader } from "./connect/stalled-reader.js";
import type { NodeIdentity } from "./core/api.js";
import { createTaskCore } from "./core/task-core.js";
import { ResourceLog } from "./core/resource-log.js";
import { createLocalRunner } from "./executor/local-runner.js";
import { detectCgroups } from "./executor/cgroup.js";
import { createContainment, groupPrefixFor } from "./executor/containment.js";
import { lookupUser } from "./executor/users.js";
import { createRunAsPolicy } from "./core/run-as.js";
import { createSshRunner } from "./executor/ssh/ssh-runner.js";
import { createDualServer, type DualHandler } from "./http-server.js";
import { createLogger, type Logger } from "./logger.js";
import { createTaskStore } from "./store/task-store.js";
import { createSpaceReserve } from "./store/space-reserve.js";
import { stateNames } from "./domain/states.js";
import { ErrorCode } from "./domain/errors.js";
import { createHostSampler, hostFields } from "./executor/host-sampler.js";
import { checkRunLimits, checkStartLimits } from "./executor/limits.js";
import { directoryBytes } from "./executor/process-usage.js";
import { createLegacyHandler } from "./gateway/legacy-handler.js";
import { handleLegacyHttp, legacyHttpPath } from "./gateway/http.js";
import { createZmqGateway, type ZmqGateway } from "./gateway/zmq.js";
import { createNotifier } from "./gateway/notifier.js";
import { createNodeMetrics, metricsHttpPath } from "./metrics.js";
import { NodeService } from "../gen/drce/v1/node_service_pb.js";
import { createNodeHandler } from "./connect/node-handler.js";
import { createNodeAdmin } from "./core/node-admin.js";
import { createNodeStats } from "./core/node-stats.js";
import { adminHttpPrefix, createAdminHandler, handleAdminHttp, logLevelNames } from "./gateway/admin.js";
import { packageVersion } from "./version.js";

/** A node, built but not yet listening. */
export interface App {
  /** The node's configuration. */
  readonly config: Config;
  /** The task core (for tests and embedding). */
  readonly core: ReturnType<typeof createTaskCore>;
  /** Resource reports (legacy 101), one per host sample. */
  readonly reports: ResourceLog;
  /** Settles when an admin client sent SHUTDOWN: whoever runs the node then closes it. */
  readonly shutdownRequested: Promise<void>;
  /** Starts listening; returns the URL of the HTTP endpoint and the ZeroMQ endpoints ("" when disabled). */
  listen(): Promise<{ url: string; zmqEndpoint: string; adminZmqEndpoint: string }>;
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
  const tlsFiles = config.tlsCert === "" ? undefined : readTlsFiles(config);
  const logger = appOptions.logger ?? createLogger(config.logLevel);
  // Room kept on the data directory's disk for final statuses: a task whose output fills the
  // disk still ends durably, and a node starts on a full disk and refuses new work.
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const space = createSpaceReserve({
    path: join(config.dataDir, "space.reserve"),
    onChange: (change) => {
      if (change.full) logger.warn({ code: change.code, while: change.what, reserveBytes: change.reserveBytes }, "the data directory's disk is full: new tasks are refused and task output is no longer stored until space is freed; the storage reserve keeps room for final states");
      else logger.info({ reserveBytes: change.reserveBytes }, "the data directory's disk has room again: new tasks are accepted");
    },
  });
  const store = await createTaskStore({ dataDir: config.dataDir, crashAt: appOptions.crashAt ?? process.env["DRCE_TEST_CRASH_AT"], space });
  const address = parseHostPort(config.listen, "--listen");
  const identity: { -readonly [K in keyof NodeIdentity]: NodeIdentity[K] } = { host: address.host === "0.0.0.0" ? hostname() : address.host, port: address.port, node: config.name };
  // Legacy result items report the node's admin address, which the original clients follow a
  // task up at (the protocol's node_port); DRCE_SET_HOST and DRCE_SET_PORT change it.
  const legacyIdentity: { -readonly [K in keyof NodeIdentity]: NodeIdentity[K] } = { ...identity };

  const startedAt = Date.now();
  const host = createHostSampler({
    // At least 100 ms: every host sample reads the stat line of every process on the host.
    intervalMs: Math.max(config.sampleIntervalMs, 100),
    diskPath: config.dataDir,
    onError: (error) => logger.warn({ err: String(error) }, "host sample failed"),
    onSample: (snapshot) => reports.publish(snapshot),
  });
  const reports = new ResourceLog(config.reportHistory);
  await host.refresh();
  host.start();

  const stats = createNodeStats({ startedAt });
  const cgroups = config.cgroups ? await detectCgroups() : undefined;
  logger.info({ cgroups: cgroups === undefined ? "none" : `v${cgroups.version}` }, cgroups === undefined ? "tasks are contained by process group only" : "tasks are contained by cgroup");
  const containment = createContainment({ cgroups, groupPrefix: groupPrefixFor(config.dataDir), onWarning: (message, details) => logger.warn(details, message) });
  const nodeUid = process.geteuid?.() ?? 0;
  const defaultUser = config.runAs === "" ? undefined : lookupUser(config.runAs);
  const sshRunner = createSshRunner({ knownHostsFile: config.sshKnownHosts, trustOnFirstUse: config.sshTrustOnFirstUse });
  const localRunner = createLocalRunner({ containment });
  const core = createTaskCore({
    store,
    localRunner,
    runAs: createRunAsPolicy({ nodeUid, defaultUser: defaultUser?.uid === nodeUid ? undefined : defaultUser, allowRootTasks: config.allowRootTasks }),
    sshRunner,
    maxConcurrent: config.maxConcurrent,
    maxQueue: config.maxQueue,
    maxOutputBytes: config.maxOutputBytes,
    inlineOutputBytes: config.inlineOutputBytes,
    maxTaskMs: config.maxTaskMs,
    maxFileBytes: config.maxFileBytes,
    allowedDirs: config.allowedDirs,
    allowEnv: config.allowEnv,
    eventHistory: config.eventHistory,
    sampleIntervalMs: config.sampleIntervalMs,
    retainFinishedMs: config.retainFinishedMs,
    retainMaxTasks: config.retainMaxTasks,
    onRetentionSweep: (trees, tasks) => logger.info({ trees, tasks, retainFinishedMs: config.retainFinishedMs, retainMaxTasks: config.retainMaxTasks }, "finished tasks past the retention bounds were deleted"),
    resources: {
      checkStart: (spec) => checkStartLimits(spec.limits, host.current()),
      checkRun: (spec, usage) => checkRunLimits(spec.limits, usage, host.current()),
      directoryBytes: (dir) => directoryBytes(dir),
      hostFields: () => hostFields(host.current()),
    },
    onInternalError: (task, error) => logger.error({ task, err: error instanceof Error ? error.stack : String(error) }, "internal error while running a task"),
    onEvent: (event) => {
      stats.record(event);
      const s = event.status;
      logger.info({ task: s.id, alias: s.alias || undefined, state: s.state, stateName: stateNames[s.state], exitStatus: s.exitStatus, errorCode: s.errorCode || undefined, durationMs: event.timeMs }, "task state");
    },
  });
  // Both follow the logs from here, so events of tasks recovered by init() are included.
  const notifier =
    config.notifyUrl === ""
      ? undefined
      : createNotifier({
          url: config.notifyUrl,
          token: config.notifyToken,
          events: core.events,
          reports: config.notifyReports ? reports : undefined,
          identity: legacyIdentity,
          timeoutMs: config.notifyTimeoutMs,
          retryMaxMs: config.notifyRetryMaxMs,
          logger,
        });
  const metrics = createNodeMetrics({ core, host: () => host.current(), notifications: notifier?.counts });
  const { recovered, loaded } = await core.init();
  // Groups of tasks that ran when the node died: kill what the process group missed.
  const swept = await containment.sweep();
  if (swept > 0) logger.warn({ swept }, "control groups left by a previous run were emptied and removed");
  if (recovered > 0) logger.warn({ recovered }, "tasks left unfinished by a previous run were marked crashed");
  logger.debug({ loaded }, "task store loaded");

  const checkToken = createTokenCheck(config.token);
  const auth: Interceptor = (next) => async (request) => {
    // Health stays open so that load balancers and orchestrators can probe without the token.
    if (request.service.typeName === Health.typeName) return next(request);
    if (!checkToken(request.header.get("authorization"))) throw new ConnectError("missing or wrong bearer token", Code.Unauthenticated);
    return next(request);
  };
  let zmq: ZmqGateway | undefined;
  let adminZmq: ZmqGateway | undefined;
  const admin = createNodeAdmin({
    settings: config,
    identity,
    version: packageVersion(),
    startedAt,
    core,
    store,
    stats,
    reports,
    host: () => host.current(),
    endpoints: () => ({ zmq: zmq?.endpoint ?? "", adminZmq: adminZmq?.endpoint ?? "" }),
  });
  const legacy = createLegacyHandler({ core, identity: legacyIdentity, logger });
  let onShutdownRequest: () => void = () => undefined;
  const shutdownRequested = new Promise<void>((resolve) => (onShutdownRequest = resolve));
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
      onShutdownRequest();
    },
    logger,
  });
  const shutdown = new AbortController();
  // Services the node serves, for health and reflection; a service added to the routes goes here too.
  const served = [TaskService, NodeService];
  const health = createHealthHandler({ services: served.map((service) => service.typeName) });
  const reflection = createReflectionHandlers([...served, Health]);
  // Every request in flight listens to it; dozens at once are normal, not a leak.
  setMaxListeners(0, shutdown.signal);
  const connect = createConnectNodeHandler({
    routes: (router: ConnectRouter) => {
      router.service(TaskService, createTaskHandler({ core, identity, firstInputMs: config.requestTimeoutMs }));
      router.service(NodeService, createNodeHandler({ admin }));
      router.service(Health, health.impl);
      router.service(ServerReflectionV1, reflection.v1);
      router.service(ServerReflectionV1alpha, reflection.v1alpha);
    },
    // The token is checked before the request's enums, so an unauthenticated caller learns nothing.
    interceptors: [auth, refuseUnknownEnums],
    readMaxBytes: config.maxRequestBytes,
    shutdownSignal: shutdown.signal,
    onHandlerError: (method, error) => logger.error({ method, err: error instanceof Error ? error.stack : String(error) }, "a Connect handler failed"),
  });
  const guard = createBrowserGuard({
    listenHost: address.host,
    allowHosts: config.allowHosts.map(parseAllowHost),
    corsOrigins: config.corsOrigins.map(parseCorsOrigin),
    secure: tlsFiles !== undefined,
  });
  /** Answers a refused request in the form its endpoint's callers read, and reads nothing of its body. */
  const refuse = (path: string, verdict: Extract<BrowserVerdict, { kind: "refuse" }>, req: Parameters<DualHandler>[0], res: Parameters<DualHandler>[1]): void => {
    const { status, message } = verdict;
    // The body is never read: an HTTP/1.1 connection must not parse it as the next request.
    // HTTP/2 has no connection header, and its session outlives a refused stream.
    const close: Record<string, string> = req.httpVersionMajor === 2 ? {} : { connection: "close" };
    if (path === legacyHttpPath) {
      const reply = legacy.errorReply(ErrorCode.CreateTask, message);
      res.writeHead(status, { "content-type": "application/json", ...close });
      res.end(reply.body);
    } else if (path === metricsHttpPath) {
      res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...close });
      res.end(`${message}\n`);
    } else if (path.startsWith(adminHttpPrefix) || `${path}/` === adminHttpPrefix) {
      const reply = adminHandler.failure("forbidden", message);
      res.writeHead(status, { "content-type": "application/json", ...close });
      res.end(reply.body);
    } else {
      // Connect reads the JSON body, gRPC and gRPC-Web clients the status headers.
      res.writeHead(status, {
        "content-type": "application/json",
        "drce-error-code": String(ErrorCode.CreateTask),
        "grpc-status": String(Code.PermissionDenied),
        "grpc-message": encodeURIComponent(message),
        ...close,
      });
      res.end(JSON.stringify({ code: "permission_denied", message }));
    }
  };
  const handler: DualHandler = (req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    // Before any work, the token included: a page of another site or a rebound host name gets nothing.
    const verdict = guard(req);
    if (verdict.kind === "refuse") {
      refuse(path, verdict, req, res);
      return;
    }
    if (verdict.kind === "preflight") {
      res.writeHead(204, verdict.headers);
      res.end();
      return;
    }
    for (const [name, value] of Object.entries(verdict.headers)) res.setHeader(name, value);
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
    if (path === metricsHttpPath) {
      if (!checkToken(req.headers["authorization"])) {
        res.statusCode = 401;
        res.setHeader("content-type", "text/plain; charset=utf-8");
        res.setHeader("www-authenticate", "Bearer");
        res.end("missing or wrong bearer token\n");
        return;
      }
      void metrics.serve(req, res);
      return;
    }
    if ((path.startsWith(adminHttpPrefix) || `${path}/` === adminHttpPrefix)) {
      if (!checkToken(req.headers["authorization"])) {
        req.resume();
        const reply = adminHandler.failure("unauthenticated", "missing or wrong bearer token");
        res.writeHead(reply.status, { "content-type": "application/json", "www-authenticate": "Bearer" });
        res.end(reply.body);
        return;
      }
      void handleAdminHttp(adminHandler, req, res);
      return;
    }
    if (stalledReaderPaths.has(path)) {
      watchStalledReader(res, { stalledMs: config.stalledReaderMs, onDrop: () => logger.warn({ path }, "dropped a stream reader that accepted nothing") });
    }
    connect(req as never, res as never);
  };
  // SendTaskInput's request body is the task's stdin: it lasts as long as the caller has input.
  const streamingRequestPaths = new Set([`/${TaskService.typeName}/${TaskService.method.sendTaskInput.name}`]);
  const server = createDualServer({
    handler,
    http2Settings: { initialWindowSize: 4 * 1024 * 1024, maxFrameSize: 1024 * 1024 },
    headersTimeoutMs: config.headersTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxConnections: config.maxConnections,
    streamingRequestPaths,
    ...(tlsFiles === undefined ? {} : { tls: tlsFiles }),
  });

  let closed = false;
  return {
    config,
    core,
    reports,
    shutdownRequested,
    async listen() {
      const bound = await listening("--listen", config.listen, () => server.listen(address.host, address.port));
      identity.port = bound.port;
      legacyIdentity.port = bound.port;
      const host = bound.host.includes(":") ? `[${bound.host}]` : bound.host;
      const url = `${config.tlsCert === "" ? "http" : "https"}://${host}:${bound.port}`;
      if (config.zmqListen !== "") {
        zmq = await listening("--zmq-listen", config.zmqListen, () => createZmqGateway({ handler: legacy, endpoint: `tcp://${config.zmqListen}`, maxBodyBytes: config.maxRequestBytes, logger, token: config.token }));
      }
      if (config.adminZmqListen !== "") {
        // The admin socket takes the node's token as its PLAIN password, like the data gateway.
        // The admin socket takes whole DRCE requests (the DRCE command), so it takes the data gateway's bound.
        adminZmq = await listening("--admin-zmq-listen", config.adminZmqListen, () => createZmqGateway({ handler: adminHandler.text, endpoint: `tcp://${config.adminZmqListen}`, maxBodyBytes: config.maxRequestBytes, logger, token: config.token }));
        const adminAddress = parseHostPort(adminZmq.endpoint.replace(/^tcp:\/\//, ""), "--admin-zmq-listen");
        legacyIdentity.host = adminAddress.host === "0.0.0.0" || adminAddress.host === "*" ? hostname() : adminAddress.host;
        legacyIdentity.port = adminAddress.port;
      }
      logger.info({ url, zmq: zmq?.endpoint, adminZmq: adminZmq?.endpoint, dataDir: config.dataDir, name: config.name }, "drce node listening");
      return { url, zmqEndpoint: zmq?.endpoint ?? "", adminZmqEndpoint: adminZmq?.endpoint ?? "" };
    },
    async close() {
      if (closed) return;
      closed = true;
      health.state.setNotServing();
      // Refuse new connections first; calls already in flight get their tasks' final states.
      server.stopAccepting();
      await core.shutdown(config.shutdownGraceMs);
      // The final states the shutdown wrote still reach a receiver that is up, within a bound.
      await notifier?.close(Math.min(2000, config.shutdownGraceMs));
      metrics.close();
      shutdown.abort();
      await Promise.all([server.close(), zmq?.close(), adminZmq?.close()]);
      host.stop();
      await Promise.all([sshRunner.close(), localRunner.close?.()]);
      store.close();
    },
  };
}

/** A listener of the node that could not bind its address: which flag, which address, and why. */
export class ListenError extends Error {
  override name = "ListenError";

  constructor(
    /** The flag that names the address (`--listen`, `--zmq-listen`, `--admin-zmq-listen`). */
    readonly flag: string,
    /** The address as configured, host:port. */
    readonly address: string,
    cause: unknown,
  ) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    const reason = code === "EADDRINUSE" ? "the address is already in use" : code === "EADDRNOTAVAIL" ? "no interface of this host has that address" : code === "EACCES" ? "permission denied (a port below 1024 needs privileges)" : (cause as Error).message;
    super(`cannot listen on ${address} (${flag}): ${reason}`, { cause });
  }
}

/** Runs one listener's bind, naming its flag and address when it fails. */
async function listening<T>(flag: string, address: string, bind: () => Promise<T>): Promise<T> {
  try {
    return await bind();
  } catch (error) {
    throw new ListenError(flag, address, error);
  }
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
