import type http from "node:http";
import http2 from "node:http2";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";

/**
 * Request paths of the response streams a stalled reader is dropped from: following a task's
 * output and watching task events. Both can be resumed (from the output offsets, from the
 * last event's sequence number), so dropping such a reader loses nothing. `RunTask` is not
 * among them: its caller is attached to the task, and closing its stream would terminate the
 * task (a `drce run` suspended with Ctrl-Z must find its task alive when it resumes).
 */
export const stalledReaderPaths: ReadonlySet<string> = new Set(
  [TaskService.method.streamTaskOutput, TaskService.method.watchTaskEvents].map((method) => `/${TaskService.typeName}/${method.name}`),
);

/** Options of {@link watchStalledReader}. */
export interface StalledReaderOptions {
  /** Milliseconds a response may accept nothing before its reader is dropped; zero disables the rule. */
  readonly stalledMs: number;
  /** Called when a reader is dropped (for logs). */
  readonly onDrop?: (() => void) | undefined;
}

/**
 * Drops the reader of a response stream that accepts nothing for `stalledMs`.
 *
 * Output is on disk and the Connect adapter waits for `drain` before it writes the next
 * message, so a slow reader costs the node one message and a flow-control window, never a
 * growing buffer. A reader that accepts nothing at all (a stopped process, a dead peer whose
 * connection stays open) would still hold an open stream, a file handle and a suspended
 * generator for as long as the task runs. Once a write has had to wait for `drain` for
 * `stalledMs`, the HTTP/2 stream is reset with ENHANCE_YOUR_CALM, which Connect and gRPC
 * clients report as ResourceExhausted; an HTTP/1.1 connection is closed. The reset aborts
 * the handler's signal, which ends the follow: the task itself goes on.
 */
export function watchStalledReader(res: http.ServerResponse | http2.Http2ServerResponse, options: StalledReaderOptions): void {
  if (options.stalledMs <= 0) return;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const clear = (): void => {
    clearTimeout(timer);
    timer = undefined;
  };
  const drop = (): void => {
    timer = undefined;
    options.onDrop?.();
    if ("stream" in res) res.stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    else res.destroy();
  };
  // The adapter waits for "drain" whenever write() returns false; that wait is the stall.
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  (res as { write: (...args: unknown[]) => boolean }).write = (...args: unknown[]): boolean => {
    const flushed = write(...args);
    // A write after the reader cancelled also returns false, and no "drain" or "close" follows:
    // a watch armed then would hold the node's event loop (and its exit on SIGTERM) for stalledMs.
    if (!flushed && timer === undefined && !closed) {
      timer = setTimeout(drop, options.stalledMs);
      // The watch guards a reader; it never keeps the process alive on its own.
      timer.unref();
    }
    return flushed;
  };
  res.on("drain", clear);
  res.once("close", () => {
    closed = true;
    clear();
  });
}
