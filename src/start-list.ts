/** One part of a node that was started, and how to stop it. */
export interface StartedPart {
  /** What the part is, as the close order names it ("store", "listeners", ...). */
  readonly name: string;
  /** Stops the part; called once, by {@link StartList.close}. */
  readonly stop: () => Promise<void> | void;
}

/**
 * The parts of a node in the order they started. Closing stops them in the reverse order, so
 * a part is never stopped while a part started after it (and so possibly using it) still runs.
 */
export interface StartList {
  /** Records a part that has just started. Throws once the list is closing: nothing starts then. */
  started(name: string, stop: () => Promise<void> | void): void;
  /** The names of the parts started so far, in start order. */
  readonly names: readonly string[];
  /**
   * Stops every started part, the last started first, each awaited before the next. A part whose
   * stop fails does not keep the parts before it running: the others are still stopped, and the
   * first failure is thrown once all were. Calling it again returns the same promise.
   */
  close(): Promise<void>;
}

/** Creates an empty {@link StartList}. */
export function createStartList(): StartList {
  const parts: StartedPart[] = [];
  let closing: Promise<void> | undefined;
  return {
    started(name, stop) {
      if (closing !== undefined) throw new Error(`cannot start ${name}: the node is closing`);
      parts.push({ name, stop });
    },
    get names() {
      return parts.map((part) => part.name);
    },
    close() {
      closing ??= (async () => {
        const failures: unknown[] = [];
        for (const part of [...parts].reverse()) {
          try {
            await part.stop();
          } catch (error) {
            failures.push(new Error(`stopping ${part.name} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
          }
        }
        if (failures.length > 0) throw failures[0];
      })();
      return closing;
    },
  };
}
