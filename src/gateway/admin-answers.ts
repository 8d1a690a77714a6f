import type { NodeAdmin } from "../core/node-admin.js";
import { inapplicableCommands, logLevelNames } from "./admin-command-table.js";
import type { AdminMessage } from "./admin-message.js";
import { AdminFailure } from "./admin-reply.js";
import { legacyStats, propertyFields, storagePropertiesList } from "./admin-stats.js";
import { adminProperty } from "./admin-text.js";
import type { LegacyHandler } from "./legacy-handler.js";

/*
 * What each served admin command answers, in both of its forms: the JSON value of drce's
 * envelope and the fields of the original text reply. The framing is the handler's.
 */

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

/** Options of {@link createAdminAnswers}: the node parts each command reads or changes. */
export interface AdminAnswersOptions {
  /** The node administration use cases: tasks, statistics, usage and the node's identity. */
  readonly admin: NodeAdmin;
  /** Answers the `DRCE` command: a whole DRCE request, as the data gateway answers it. */
  readonly legacy?: Pick<LegacyHandler, "handle"> | undefined;
  /** What legacy result items report as host and port (shared with the legacy handler). */
  readonly reported?: ReportedAddress | undefined;
  /** LLGET / LLSET; without it they answer that the level cannot be changed here. */
  readonly logLevel?: LogLevelControl | undefined;
  /** SHUTDOWN: starts the node's graceful shutdown; without it SHUTDOWN answers ERROR. */
  readonly requestShutdown?: (() => void) | undefined;
}

/** A command's answer: the JSON value of drce's envelope and the fields of the original text reply. */
export interface AdminAnswer {
  readonly data: unknown;
  readonly text: readonly string[];
}

/** Marks a command nobody answers. */
export const unknownCommand: unique symbol = Symbol("unknown command");

/**
 * Creates the answer of every served command over the node's parts. The function it returns
 * throws an {@link AdminFailure} for an expected refusal (a command that has no meaning here, bad
 * parameters) and gives {@link unknownCommand} for a command nobody serves.
 */
export function createAdminAnswers(options: AdminAnswersOptions): (message: AdminMessage, signal: AbortSignal | undefined) => Promise<AdminAnswer | typeof unknownCommand> {
  const { admin } = options;
  const statsNow = (): Record<string, unknown> => {
    const stats = admin.stats();
    return legacyStats(stats.sync, stats.async);
  };

  // What PROPERTIES tells of each handler: the fields the PHP manager reads to draw the
  // cluster (name, clientIdentity, connectionString, nodeMode) and the node's statistics.
  const properties = (handler: string): AdminAnswer => {
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

  return async (message: AdminMessage, signal: AbortSignal | undefined): Promise<AdminAnswer | typeof unknownCommand> => {
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
        return unknownCommand;
    }
  };
}
