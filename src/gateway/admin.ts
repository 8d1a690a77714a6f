import { ErrorCode } from "../domain/errors.js";
import { createAdminAnswers, unknownCommand, type AdminAnswer, type AdminAnswersOptions } from "./admin-answers.js";
import { dataNodeHandlers, managerHandlers, servedAdminCommands } from "./admin-command-table.js";
import { parseAdminMessage, type AdminMessage } from "./admin-message.js";
import { adminFailureReply, AdminFailure, adminOkReply, type AdminErrorCode, type AdminReply } from "./admin-reply.js";
import { adminErrorText, adminOkText } from "./admin-text.js";
import type { LegacyLogger } from "./legacy-handler.js";
import type { ZmqMessageHandler } from "./zmq.js";

/** Options of {@link createAdminHandler}: the node parts its commands use, and where its own failures go. */
export interface AdminHandlerOptions extends AdminAnswersOptions {
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
 * Creates the handler of legacy admin commands over the node administration use cases: it
 * frames each message, refuses the handlers of routers and managers, runs the command's
 * answer, and reports an unexpected failure to the logger (the caller gets a generic ERROR).
 */
export function createAdminHandler(options: AdminHandlerOptions): AdminHandler {
  const { admin, logger } = options;
  if (typeof admin !== "object" || admin === null) throw new TypeError("createAdminHandler: admin is required");
  const answer = createAdminAnswers(options);

  /** Runs one command; an ERROR is a value, never a rejection. */
  const evaluate = async (message: AdminMessage, signal: AbortSignal | undefined): Promise<AdminAnswer | AdminFailure> => {
    if ((managerHandlers as readonly string[]).includes(message.handler)) {
      return new AdminFailure("not_applicable", `the handler ${message.handler} belongs to routers and managers; a drce data node has ${dataNodeHandlers.join(", ")}`);
    }
    try {
      const result = await answer(message, signal);
      if (result === unknownCommand) {
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
    return result instanceof AdminFailure ? adminFailureReply(result.code, result.message, message) : adminOkReply(message, result.data);
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
      if (typeof parsed === "string") return adminFailureReply("malformed", parsed);
      return run(parsed, signal);
    },
    handleText,
    run,
    errorReply: (errorCode, text) => adminFailureReply(errorCode === ErrorCode.Parse ? "malformed" : "unavailable", text),
    failure: adminFailureReply,
    text: {
      handle: (body, signal) => handleText(body, signal),
      errorReply: (_errorCode, text) => ({ body: adminErrorText(text) }),
    },
  };
}
