import { pino, type Logger } from "pino";

/** Creates the node's structured logger (JSON lines on stderr). Secrets are never passed to it. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination(2));
}

export type { Logger };
