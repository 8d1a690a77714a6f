import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The failure of a node that accepted no connection, or sent nothing, within the connect
 * timeout: the caller (the CLI, a manager) gives up instead of waiting for ever.
 */
export class NoAnswerError extends ConnectError {
  override name = "NoAnswerError";

  constructor(server: string, timeoutMs: number) {
    super(`no answer from ${server} within ${formatSeconds(timeoutMs)} s`, Code.Unavailable);
  }
}

function formatSeconds(ms: number): string {
  return Number.isInteger(ms / 1000) ? String(ms / 1000) : (ms / 1000).toFixed(1);
}
