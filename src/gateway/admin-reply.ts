import type { AdminMessage } from "./admin-message.js";

/*
 * drce's JSON envelope of admin replies, `{"status":"OK",...,"data":...}` or
 * `{"status":"ERROR",...,"error":{code,message}}`, with the HTTP status of each error code.
 */

/** Stable codes of admin errors. */
export type AdminErrorCode = "malformed" | "unknown_command" | "not_applicable" | "unauthenticated" | "forbidden" | "method_not_allowed" | "unavailable" | "internal";

/** A reply to one admin message, ready for any transport. */
export interface AdminReply {
  /** The JSON envelope: `{"status":"OK",...,"data":...}` or `{"status":"ERROR",...,"error":{code,message}}`. */
  readonly body: string;
  /** HTTP status: 200, 400 malformed, 401, 404 unknown command, 405, 501 not applicable, 500/503. */
  readonly status: number;
}

/** The HTTP status of each admin error. */
export const adminHttpStatus: Readonly<Record<AdminErrorCode, number>> = {
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

/** The OK envelope of a command's answer, naming its handler and command. */
export function adminOkReply(message: AdminMessage, data: unknown): AdminReply {
  return { status: 200, body: JSON.stringify({ status: "OK", handler: message.handler, command: message.command, data }) };
}

/** The ERROR envelope, naming the handler and command of `message` when they are known. */
export function adminFailureReply(code: AdminErrorCode, text: string, message: Partial<AdminMessage> = {}): AdminReply {
  return {
    status: adminHttpStatus[code],
    body: JSON.stringify({ status: "ERROR", handler: message.handler ?? "", command: message.command ?? "", error: { code, message: text } }),
  };
}

/** An expected refusal of a command, with its admin error code; the handler turns it into an ERROR reply. */
export class AdminFailure extends Error {
  override name = "AdminFailure";
  constructor(
    readonly code: AdminErrorCode,
    message: string,
  ) {
    super(message);
  }
}
