import type { TerminalHandle } from "../terminal.js";

/**
 * Output bound for a terminal that may not be on the page yet: what arrives before the
 * terminal is ready is kept and written to it the moment it is, in order. A fan-out's first
 * chunk of a node comes in the same render that adds the node's terminal.
 */
export interface OutputSink {
  /** Writes to the terminal, or keeps the bytes until it is ready. */
  write(bytes: Uint8Array | string): void;
  /** Hands the sink its terminal (a Terminal's `onReady`): kept bytes are written first. */
  attach(terminal: TerminalHandle): void;
}

/** Makes an {@link OutputSink} with no terminal yet. */
export function createOutputSink(): OutputSink {
  let terminal: TerminalHandle | undefined;
  let pending: (Uint8Array | string)[] = [];
  return {
    write(bytes) {
      if (terminal === undefined) pending.push(bytes);
      else terminal.write(bytes);
    },
    attach(ready) {
      terminal = ready;
      for (const bytes of pending) ready.write(bytes);
      pending = [];
    },
  };
}
