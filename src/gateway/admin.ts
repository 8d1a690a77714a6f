import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { NodeAdmin } from "../core/node-admin.js";
import type { ModeStats, StatFigure } from "../core/node-stats.js";
import { ErrorCode } from "../domain/errors.js";
import { adminErrorText, adminOkText, adminProperty } from "./admin-text.js";
import type { LegacyHandler, LegacyLogger } from "./legacy-handler.js";
import type { ZmqMessageHandler } from "./zmq.js";

/**
 * The legacy admin commands that report the node's figures. PROPERTIES and STAT both give the
 * NODE_MSG_PROPERTIES statistics; NODE_INFO gives the node's identity and limits. Every
 * command drce serves is in {@link servedAdminCommands}.
 */
export const adminCommands = ["DRCE_GET_TASKS", "DRCE_GET_TASKS_INFO", "NODE_RESOURCE_USAGE", "PROPERTIES", "STAT", "NODE_INFO", "ECHO"] as const;

/** One of {@link adminCommands}. */
export type AdminCommand = (typeof adminCommands)[number];

/** Stable codes of admin errors. */
export type AdminErrorCode = "malformed" | "unknown_command" | "not_applicable" | "unauthenticated" | "forbidden" | "method_not_allowed" | "unavailable" | "internal";

/** A parsed admin message `handler<TAB>COMMAND<TAB>parameters<TAB>`. */
export interface AdminMessage {
  readonly handler: string;
  readonly command: string;
  readonly parameters: string;
}

/** A reply to one admin message, ready for any transport. */
export interface AdminReply {
  /** The JSON envelope: `{"status":"OK",...,"data":...}` or `{"status":"ERROR",...,"error":{code,message}}`. */
  readonly body: string;
  /** HTTP status: 200, 400 malformed, 401, 404 unknown command, 405, 501 not applicable, 500/503. */
  readonly status: number;
}

const httpStatus: Readonly<Record<AdminErrorCode, number>> = {
  malformed: 400,
  unauthenticated: 401,
  // A foreign Host (421) or Origin (403); the HTTP status is the guard's, this is the default.
  forbidden: 403,
  unknown_command: 404,
  method_not_allowed: 405,
  internal: 500,
  not_applicable: 501,
  unavailable: 503,
};

/** The figure names of NODE_MSG_PROPERTIES, as the protocol's "Stat variables structure" spells them. */
function legacyFigure(f: StatFigure): { min: number; avg: number; max: number } {
  const round = (v: number): number => Math.round(v * 100) / 100;
  return { min: round(f.min), avg: round(f.avg), max: round(f.max) };
}

/** The NODE_MSG_PROPERTIES object of the protocol from the node's statistics. */
export function legacyStats(sync: ModeStats, async: ModeStats): Record<string, unknown> {
  return {
    timeAsyncTask: legacyFigure(async.timeMs),
    timeSyncTask: legacyFigure(sync.timeMs),
    sizeInputBufferSyncTasks: legacyFigure(sync.inputBytes),
    sizeOutputBufferSyncTasks: legacyFigure(sync.outputBytes),
    sizeInputBufferAsyncTasks: legacyFigure(async.inputBytes),
    sizeOutputBufferAsyncTasks: legacyFigure(async.outputBytes),
    cpuUsageAsyncTasks: legacyFigure(async.cpuPercent),
    memoryUsageAsyncTasks: legacyFigure(async.memoryBytes),
    countSyncTasksForMinute: legacyFigure(sync.perMinute),
    countAsyncTasksForMinute: legacyFigure(async.perMinute),
    countSyncTasks: sync.tasks,
    countAsyncTasks: async.tasks,
    countSyncTasksFail: sync.failed,
    countAsyncTasksFail: async.failed,
  };
}

/** The host and port the node reports in legacy result items; DRCE_SET_HOST/PORT change them. */
export interface ReportedAddress {
  host: string;
  port: number;
}

/** The node's log level, read and changed by LLGET and LLSET. */
export interface LogLevelControl {
  /** The level now (a pino level name). */
  get(): string;
  /** Sets the level; throws on a name the logger does not know. */
  set(level: string): void;
}

/** Options of {@link createAdminHandler}. */
export interface AdminHandlerOptions {
  readonly admin: NodeAdmin;
  /** Answers the `DRCE` command: a whole DRCE request, as the data gateway answers it. */
  readonly legacy?: Pick<LegacyHandler, "handle">;
  /** What legacy result items report as host and port (shared with the legacy handler). */
  readonly reported?: ReportedAddress;
  /** LLGET / LLSET; without it they answer that the level cannot be changed here. */
  readonly logLevel?: LogLevelControl;
  /** SHUTDOWN: starts the node's graceful shutdown; without it SHUTDOWN answers ERROR. */
  readonly requestShutdown?: () => void;
  /** Where unexpected failures are reported (never to the caller). */
  readonly logger?: LegacyLogger;
}

/** Answers legacy admin commands; shared by the ZeroMQ admin socket and `GET /drce/admin/<COMMAND>`. */
export interface AdminHandler {
  /**
   * Answers a raw admin message `handler<TAB>COMMAND<TAB>parameters<TAB>` with drce's JSON
   * envelope. Never rejects: a malformed message or an unknown command is an error reply.
   */
  handle(body: string | Uint8Array, signal?: AbortSignal): Promise<AdminReply>;
  /**
   * Answers a raw admin message in the original framing, `OK<TAB>fields...` or
   * `ERROR<TAB>message` (what the ZeroMQ admin socket sends). Never rejects.
   */
  handleText(body: string | Uint8Array, signal?: AbortSignal): Promise<{ readonly body: string }>;
  /** Answers a command already split into its parts (HTTP), with the JSON envelope. Never rejects. */
  run(message: AdminMessage, signal?: AbortSignal): Promise<AdminReply>;
  /**
   * An error reply for a transport-level refusal. Takes a legacy error code so that the
   * ZeroMQ gateway can use it as it uses the task handler's: 1 (parse) is "malformed",
   * anything else "unavailable".
   */
  errorReply(errorCode: number, message: string): AdminReply;
  /** An error reply with an admin error code, naming the handler and command of `request` when known. */
  failure(code: AdminErrorCode, message: string, request?: Partial<AdminMessage>): AdminReply;
  /** The same handler speaking the original text framing, for the ZeroMQ admin socket. */
  readonly text: ZmqMessageHandler;
}

/**
 * Splits `handler<TAB>COMMAND<TAB>parameters<TAB>` (the original clients end it with a tab;
 * parameters may be missing). Returns a string saying what is wrong when it is malformed.
 */
export function parseAdminMessage(text: string): AdminMessage | string {
  if (text.length === 0) return "the admin message is empty; expected handler<TAB>COMMAND<TAB>parameters<TAB>";
  const parts = text.replace(/\r?\n$/, "").split("\t");
  if (parts.length < 2) return "the admin message has no tab-separated command; expected handler<TAB>COMMAND<TAB>parameters<TAB>";
  const [handler = "", command = "", ...rest] = parts;
  // The original framing ends with a tab, so the last part is empty; parameters never hold tabs.
  if (rest.length > 0 && rest[rest.length - 1] === "") rest.pop();
  if (rest.length > 1) return "the admin message has more than three tab-separated parts";
  if (command.trim() === "") return "the admin message names no command";
  return { handler, command: command.trim(), parameters: rest[0] ?? "" };
}

/** The handlers of an original data node; drce answers for each of them. */
export const dataNodeHandlers = ["Admin", "DataProcessorData", "DataClientData"] as const;

/** Handlers of original routers and managers: a drce data node has none of them. */
export const managerHandlers = ["RouterServerProxy", "DataServerProxy", "DataClientProxy", "DataReducerProxy"] as const;

/**
 * Commands of the original nodes that mean nothing on a drce data node, each with the reason
 * given in its ERROR reply.
 */
export const inapplicableCommands: Readonly<Record<string, string>> = {
  HEARTBEAT_DELAY_GET: "a drce data node sends no heartbeats",
  HEARTBEAT_DELAY_SET: "a drce data node sends no heartbeats",
  HEARTBEAT_TIMEOUT_GET: "a drce data node sends no heartbeats",
  HEARTBEAT_TIMEOUT_SET: "a drce data node sends no heartbeats",
  HEARTBEAT_MODE_GET: "a drce data node sends no heartbeats",
  HEARTBEAT_MODE_SET: "a drce data node sends no heartbeats",
  MMGET: "a drce data node has no manager mode",
  MMSET: "a drce data node has no manager mode",
  MPMGET: "a drce data node has no manager purge mode",
  MPMSET: "a drce data node has no manager purge mode",
  MRCSGET: "a drce data node collects no resource usage of other nodes",
  MRCSSET: "a drce data node collects no resource usage of other nodes",
  POLL_TIMEOUT_GET: "drce sockets are event driven and have no poll timeout",
  POLL_TIMEOUT_SET: "drce sockets are event driven and have no poll timeout",
  PROPERTY_INTERVAL_SET: "the sample interval is fixed at start (--sample-interval-ms)",
  DUMP_INTERVAL_GET: "drce writes every task state to disk as it changes, with no periodic dump",
  DUMP_INTERVAL_SET: "drce writes every task state to disk as it changes, with no periodic dump",
  NODE_ROUTES: "a drce data node routes nothing",
  NODE_RECOVER_NOTIFICATION_CONNECTION: "drce retries notifications by itself (--notify-url)",
  REBUILD_SERVER_CONNECTION: "a drce data node has no server connection to a manager",
  DISCONNECT_SERVER_CONNECTION: "a drce data node has no server connection to a manager",
  REBUILD_CLIENT_CONNECTION: "a drce data node has no client connection to a router",
  DISCONNECT_CLIENT_CONNECTION: "a drce data node has no client connection to a router",
  UPDATE_SCHEMA: "a drce data node has no cluster schema",
  SPHINX: "drce has no Sphinx search engine",
};

/** Every command that does something on a drce node (the others are in {@link inapplicableCommands}). */
export const servedAdminCommands = [
  ...adminCommands,
  "DRCE",
  "TIME",
  "RESET_STAT_COUNTERS",
  "DRCE_GET_HOST",
  "DRCE_SET_HOST",
  "DRCE_GET_PORT",
  "DRCE_SET_PORT",
  "LLGET",
  "LLSET",
  "PROPERTY_INTERVAL_GET",
  "SHUTDOWN",
] as const;

/** A command's answer: the JSON value of drce's envelope and the fields of the original text reply. */
interface Answer {
  readonly data: unknown;
  readonly text: readonly string[];
}

/** An expected refusal of a command, turned into an ERROR reply. */
class AdminFailure extends Error {
  override name = "AdminFailure";
  constructor(
    readonly code: AdminErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Marks a command nobody answers. */
const unknown = Symbol("unknown command");

/** Fields `name=value` of an object: scalars as they are, objects as JSON. */
function propertyFields(values: Record<string, unknown>): string[] {
  return Object.entries(values).map(([name, value]) =>
    adminProperty(name, typeof value === "object" && value !== null ? JSON.stringify(value) : (value as string | number | boolean)),
  );
}

/** The NODE_MSG_PROPERTIES figures as the `key:value,...` list of the original `drceDataStorageProperties`. */
function storagePropertiesList(stats: Record<string, unknown>): string {
  const items: string[] = [];
  for (const [name, value] of Object.entries(stats)) {
    if (typeof value === "object" && value !== null) {
      for (const [part, v] of Object.entries(value)) items.push(`${name}.${part}:${String(v)}`);
    } else {
      items.push(`${name}:${String(value)}`);
    }
  }
  return items.join(",");
}

/** Creates the handler of legacy admin commands over the node administration use cases. */
export function createAdminHandler(options: AdminHandlerOptions): AdminHandler {
  const { admin, logger } = options;
  if (typeof admin !== "object" || admin === null) throw new TypeError("createAdminHandler: admin is required");

  const ok = (message: AdminMessage, data: unknown): AdminReply => ({
    status: 200,
    body: JSON.stringify({ status: "OK", handler: message.handler, command: message.command, data }),
  });
  const failure = (code: AdminErrorCode, text: string, message: Partial<AdminMessage> = {}): AdminReply => ({
    status: httpStatus[code],
    body: JSON.stringify({ status: "ERROR", handler: message.handler ?? "", command: message.command ?? "", error: { code, message: text } }),
  });

  const statsNow = (): Record<string, unknown> => {
    const stats = admin.stats();
    return legacyStats(stats.sync, stats.async);
  };

  // What PROPERTIES tells of each handler: the fields the PHP manager reads to draw the
  // cluster (name, clientIdentity, connectionString, nodeMode) and the node's statistics.
  const properties = (handler: string): Answer => {
    const info = admin.info();
    const stats = statsNow();
    const connection = handler === "DataClientData" ? info.zmqEndpoint : info.adminZmqEndpoint;
    const fields = [
      adminProperty("name", info.name),
      adminProperty("clientIdentity", info.name),
      adminProperty("connectionString", connection),
      adminProperty("startedAt", info.startedAt),
      adminProperty("version", info.version),
      adminProperty("role", info.role),
      ...propertyFields(stats),
      adminProperty("drceDataStorageProperties", storagePropertiesList(stats)),
    ];
    return { data: stats, text: fields };
  };

  const reported = (): ReportedAddress => {
    if (options.reported === undefined) throw new AdminFailure("not_applicable", "this node reports no legacy host and port");
    return options.reported;
  };

  const answer = async (message: AdminMessage, signal: AbortSignal | undefined): Promise<Answer | typeof unknown> => {
    const { command, parameters } = message;
    const reason = inapplicableCommands[command];
    if (reason !== undefined) throw new AdminFailure("not_applicable", `${command} has no meaning here: ${reason}`);
    switch (command) {
      case "DRCE_GET_TASKS": {
        const data = admin.tasks().map((s) => ({ id: s.id, sdate: s.startedAt || s.submittedAt, state: s.state, tmode: s.mode }));
        return { data, text: [JSON.stringify(data)] };
      }
      case "DRCE_GET_TASKS_INFO": {
        const data = (await admin.taskInfos()).map((t) => ({ id: t.id, info: t.info, modified: t.modified }));
        return { data, text: [JSON.stringify(data)] };
      }
      case "NODE_RESOURCE_USAGE": {
        const reading = admin.usage();
        return { data: reading.usage, text: [...propertyFields({ ...reading.usage }), adminProperty("balancing", reading.balancing)] };
      }
      case "PROPERTIES":
        return properties(message.handler);
      case "STAT": {
        const stats = statsNow();
        return { data: stats, text: propertyFields(stats) };
      }
      case "RESET_STAT_COUNTERS": {
        admin.resetStats();
        const stats = statsNow();
        return { data: stats, text: propertyFields(stats) };
      }
      case "NODE_INFO": {
        const info = admin.info();
        return { data: info, text: propertyFields({ ...info }) };
      }
      case "ECHO":
        return { data: parameters, text: [parameters] };
      case "TIME": {
        const info = admin.info();
        return { data: { time: info.uptimeMs, startedAt: info.startedAt }, text: [adminProperty("time", info.uptimeMs), adminProperty("startedAt", info.startedAt)] };
      }
      case "DRCE": {
        if (options.legacy === undefined) throw new AdminFailure("not_applicable", "this node answers no DRCE requests");
        if (parameters.trim() === "") throw new AdminFailure("malformed", "DRCE needs a DRCE request JSON as its parameters");
        const reply = await options.legacy.handle(parameters, signal);
        return { data: JSON.parse(reply.body) as unknown, text: [reply.body] };
      }
      case "DRCE_GET_HOST": {
        const host = reported().host;
        return { data: { host }, text: [adminProperty("host", host)] };
      }
      case "DRCE_SET_HOST": {
        const address = reported();
        const host = parameters.trim();
        if (!/^[A-Za-z0-9._:[\]-]{1,253}$/.test(host)) throw new AdminFailure("malformed", "DRCE_SET_HOST needs a host name or address as its parameters");
        const previous = address.host;
        address.host = host;
        return { data: { host, previous }, text: [adminProperty("host", host), adminProperty("previous", previous)] };
      }
      case "DRCE_GET_PORT": {
        const port = reported().port;
        return { data: { port }, text: [adminProperty("port", port)] };
      }
      case "DRCE_SET_PORT": {
        const address = reported();
        const port = /^\s*[0-9]{1,5}\s*$/.test(parameters) ? Number(parameters) : NaN;
        if (!(port >= 1 && port <= 65535)) throw new AdminFailure("malformed", "DRCE_SET_PORT needs a port number from 1 to 65535 as its parameters");
        const previous = address.port;
        address.port = port;
        return { data: { port, previous }, text: [adminProperty("port", port), adminProperty("previous", previous)] };
      }
      case "LLGET": {
        if (options.logLevel === undefined) throw new AdminFailure("not_applicable", "this node's log level is not reachable here");
        const level = options.logLevel.get();
        return { data: { log: level }, text: [adminProperty("log", level)] };
      }
      case "LLSET": {
        if (options.logLevel === undefined) throw new AdminFailure("not_applicable", "this node's log level is not reachable here");
        const level = parameters.trim();
        const previous = options.logLevel.get();
        try {
          options.logLevel.set(level);
        } catch {
          throw new AdminFailure("malformed", `LLSET needs a log level: ${logLevelNames.join(", ")}`);
        }
        return { data: { log: level, previous }, text: [adminProperty("log", level), adminProperty("previous", previous)] };
      }
      case "PROPERTY_INTERVAL_GET": {
        const interval = admin.info().limits.sampleIntervalMs;
        return { data: { interval }, text: [adminProperty("interval", interval)] };
      }
      case "SHUTDOWN": {
        if (options.requestShutdown === undefined) throw new AdminFailure("not_applicable", "this node cannot be shut down from here");
        // Answered first: the reply leaves before the sockets close.
        setImmediate(options.requestShutdown);
        return { data: { shutdown: true }, text: [adminProperty("shutdown", "started")] };
      }
      default:
        return unknown;
    }
  };

  /** Runs one command; an ERROR is a value, never a rejection. */
  const evaluate = async (message: AdminMessage, signal: AbortSignal | undefined): Promise<Answer | AdminFailure> => {
    if ((managerHandlers as readonly string[]).includes(message.handler)) {
      return new AdminFailure("not_applicable", `the handler ${message.handler} belongs to routers and managers; a drce data node has ${dataNodeHandlers.join(", ")}`);
    }
    try {
      const result = await answer(message, signal);
      if (result === unknown) {
        return new AdminFailure("unknown_command", `unknown admin command ${JSON.stringify(message.command)}; known: ${servedAdminCommands.join(", ")}`);
      }
      return result;
    } catch (error) {
      if (error instanceof AdminFailure) return error;
      logger?.error({ err: error, command: message.command }, "admin command failed");
      return new AdminFailure("internal", "internal error of the node");
    }
  };

  const run = async (message: AdminMessage, signal?: AbortSignal): Promise<AdminReply> => {
    const result = await evaluate(message, signal);
    return result instanceof AdminFailure ? failure(result.code, result.message, message) : ok(message, result.data);
  };

  const decode = (body: string | Uint8Array): AdminMessage | string => parseAdminMessage(typeof body === "string" ? body : Buffer.from(body).toString("utf8"));

  const handleText = async (body: string | Uint8Array, signal?: AbortSignal): Promise<{ body: string }> => {
    const parsed = decode(body);
    if (typeof parsed === "string") return { body: adminErrorText(parsed) };
    const result = await evaluate(parsed, signal);
    return { body: result instanceof AdminFailure ? adminErrorText(result.message) : adminOkText(result.text) };
  };

  return {
    async handle(body, signal) {
      const parsed = decode(body);
      if (typeof parsed === "string") return failure("malformed", parsed);
      return run(parsed, signal);
    },
    handleText,
    run,
    errorReply: (errorCode, text) => failure(errorCode === ErrorCode.Parse ? "malformed" : "unavailable", text),
    failure,
    text: {
      handle: (body, signal) => handleText(body, signal),
      errorReply: (_errorCode, text) => ({ body: adminErrorText(text) }),
    },
  };
}

/** The log levels LLSET takes (pino's). */
export const logLevelNames = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** The path prefix of the HTTP admin commands: `GET /drce/admin/<COMMAND>`. */
export const adminHttpPrefix = "/drce/admin/";

/**
 * Serves `GET /drce/admin/<COMMAND>[?handler=H&parameters=P]` with the admin handler's JSON
 * envelope: 200, 400 malformed, 404 unknown command, 405 other methods. The bearer token
 * check and the routing to this prefix are the caller's business. Never rejects.
 */
export async function handleAdminHttp(
  handler: AdminHandler,
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
): Promise<void> {
  const send = (reply: AdminReply, headers: Record<string, string> = {}): void => {
    if (res.headersSent || res.writableEnded) return;
    res.statusCode = reply.status;
    res.setHeader("content-type", "application/json");
    res.setHeader("cache-control", "no-store");
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    res.end(reply.body);
  };
  req.resume();
  if (req.method !== "GET" && req.method !== "HEAD") {
    send(handler.failure("method_not_allowed", `method ${req.method ?? ""} is not allowed; use GET`), { allow: "GET" });
    return;
  }
  const url = new URL(req.url ?? "/", "http://node.invalid");
  let command: string;
  try {
    // "/drce/admin" without the slash is routed here too, and names no command.
    command = decodeURIComponent(url.pathname.slice(adminHttpPrefix.length));
  } catch {
    send(handler.failure("malformed", "the command in the path is not valid percent-encoding"));
    return;
  }
  if (command === "" || command.includes("/") || command.includes("\t")) {
    send(handler.failure("malformed", "expected GET /drce/admin/<COMMAND>"));
    return;
  }
  send(await handler.run({ handler: url.searchParams.get("handler") ?? "Admin", command, parameters: url.searchParams.get("parameters") ?? "" }));
}
