/** The longest wait one timer can take. */
const longestTimerMs = 2 ** 31 - 1;

/** A deadline as a signal, with the timer behind it cleared when it is no longer needed. */
export interface Deadline {
  /** Aborted (with a TimeoutError reason) once the time is up, or with the parent. */
  readonly signal: AbortSignal;
  /** Clears the timer; the signal then only follows its parent. */
  clear(): void;
}

/**
 * Makes a deadline `ms` from now under `parent`, as `AbortSignal.any([parent,
 * AbortSignal.timeout(ms)])` would, but with a timer that is cleared by {@link Deadline.clear}:
 * a task that ends long before its time_max must not leave a timer behind for hours. An
 * infinite `ms` arms no timer.
 */
export function createDeadline(ms: number, parent?: AbortSignal): Deadline {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const clear = (): void => {
    clearTimeout(timer);
    timer = undefined;
    parent?.removeEventListener("abort", onParent);
  };
  const onParent = (): void => {
    clear();
    controller.abort(parent?.reason);
  };
  if (parent?.aborted === true) controller.abort(parent.reason);
  else {
    parent?.addEventListener("abort", onParent, { once: true });
    if (Number.isFinite(ms)) {
      const at = Date.now() + Math.max(0, ms);
      // setTimeout fires at once past 2^31-1 ms: a deadline of weeks is reached in steps.
      const arm = (): void => {
        const left = at - Date.now();
        timer = setTimeout(
          () => {
            if (Date.now() < at) return arm();
            clear();
            controller.abort(new DOMException("the deadline passed", "TimeoutError"));
          },
          Math.max(0, Math.min(left, longestTimerMs)),
        );
      };
      arm();
    }
  }
  return { signal: controller.signal, clear };
}
