import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { NodeAdmin } from "../core/node-admin.js";
import type { ModeStats, StatFigure } from "../core/node-stats.js";
import { ErrorCode } from "../domain/errors.js";
import type { LegacyLogger } from "./legacy-handler.js";

/**
 * The legacy admin commands drce answers. PROPERTIES and STAT both give the
 * NODE_MSG_PROPERTIES statistics; NODE_INFO gives the node's identity and limits.
 */
export const adminCommands = ["DRCE_GET_TASKS", "DRCE_GET_TASKS_INFO", "NODE_RESOURCE_USAGE", "PROPERTIES", "STAT", "NODE_INFO", "ECHO"] as const;

/** One of {@link adminCommands}. */
export type AdminCommand = (typeof adminCommands)[number];

/** Stable codes of admin errors. */
export type AdminErrorCode = "malformed" | "unknown_command" | "unauthenticated" | "forbidden" | "method_not_allowed" | "unavailable" | "internal";

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
  /** HTTP status: 200, 400 malformed, 401, 404 unknown command, 405, 500/503. */
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

/** Options of {@link createAdminHandler}. */
export interface AdminHandlerOptions {
  readonly admin: NodeAdmin;
  /** Where unexpected failures are reported (never to the caller). */
  readonly logger?: LegacyLogger;
}

/** Answers legacy admin commands; shared by the ZeroMQ admin socket and `GET /drce/admin/<COMMAND>`. */
export interface AdminHandler {
  /**
   * Answers a raw admin message `handler<TAB>COMMAND<TAB>parameters<TAB>` (ZeroMQ). Never
   * rejects: a malformed message or an unknown command is an error reply.
   */
  handle(body: string | Uint8Array, signal?: AbortSignal): Promise<AdminReply>;
  /** Answers a command already split into its parts (HTTP). Never rejects. */
  run(message: AdminMessage): Promise<AdminReply>;
  /**
   * An error reply for a transport-level refusal. Takes a legacy error code so that the
   * ZeroMQ gateway can use it as it uses the task handler's: 1 (parse) is "malformed",
   * anything else "unavailable".
   */
  errorReply(errorCode: number, message: string): AdminReply;
  /** An error reply with an admin error code, naming the handler and command of `request` when known. */
  failure(code: AdminErrorCode, message: string, request?: Partial<AdminMessage>): AdminReply;
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

/** Marks a command nobody answers. */
const unknown = Symbol("unknown command");

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

  const answer = async (message: AdminMessage): Promise<unknown> => {
    switch (message.command as AdminCommand) {
      case "DRCE_GET_TASKS":
        return admin.tasks().map((s) => ({ id: s.id, sdate: s.startedAt || s.submittedAt, state: s.state, tmode: s.mode }));
      case "DRCE_GET_TASKS_INFO":
        return (await admin.taskInfos()).map((t) => ({ id: t.id, info: t.info, modified: t.modified }));
      case "NODE_RESOURCE_USAGE":
        return admin.usage().usage;
      case "PROPERTIES":
      case "STAT": {
        const stats = admin.stats();
        return legacyStats(stats.sync, stats.async);
      }
      case "NODE_INFO":
        return admin.info();
      case "ECHO":
        return message.parameters;
      default:
        return unknown;
    }
  };

  const run = async (message: AdminMessage): Promise<AdminReply> => {
    try {
      const data = await answer(message);
      if (data === unknown) {
        return failure("unknown_command", `unknown admin command ${JSON.stringify(message.command)}; known: ${adminCommands.join(", ")}`, message);
      }
      return ok(message, data);
    } catch (error) {
      logger?.error({ err: error, command: message.command }, "admin command failed");
      return failure("internal", "internal error of the node", message);
    }
  };

  return {
    async handle(body) {
      const text = typeof body === "string" ? body : Buffer.from(body).toString("utf8");
      const parsed = parseAdminMessage(text);
      if (typeof parsed === "string") return failure("malformed", parsed);
      return run(parsed);
    },
    run,
    errorReply: (errorCode, text) => failure(errorCode === ErrorCode.Parse ? "malformed" : "unavailable", text),
    failure,
  };
}

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
