import { EventEmitter } from "node:events";
import http2 from "node:http2";
import { describe, expect, it, vi } from "vitest";
import { parseServeConfig } from "../../src/config.js";
import { stalledReaderPaths, watchStalledReader } from "../../src/connect/stalled-reader.js";

/** A stand-in for an HTTP/2 server response whose write() says whether it was flushed. */
function fakeResponse(flushes: boolean[]) {
  const res = Object.assign(new EventEmitter(), {
    stream: { close: vi.fn() },
    write: vi.fn((_chunk: unknown) => flushes.shift() ?? true),
    destroy: vi.fn(),
  });
  return res;
}

describe("watchStalledReader", () => {
  it("guards the resumable streams only, never RunTask", () => {
    expect([...stalledReaderPaths].sort()).toEqual(["/drce.v1.TaskService/StreamTaskOutput", "/drce.v1.TaskService/WatchTaskEvents"]);
  });

  it("resets the stream with ENHANCE_YOUR_CALM once a write has waited for drain too long", () => {
    vi.useFakeTimers();
    try {
      const res = fakeResponse([false]);
      const onDrop = vi.fn();
      watchStalledReader(res as never, { stalledMs: 1000, onDrop });
      res.write("x");
      vi.advanceTimersByTime(999);
      expect(res.stream.close).not.toHaveBeenCalled();
      vi.advanceTimersByTime(1);
      expect(res.stream.close).toHaveBeenCalledWith(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      expect(onDrop).toHaveBeenCalledTimes(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it("keeps a reader that drains in time, however often it makes the node wait", () => {
    vi.useFakeTimers();
    try {
      const res = fakeResponse([false, false, false, true]);
      watchStalledReader(res as never, { stalledMs: 1000 });
      for (let i = 0; i < 4; i++) {
        res.write("x");
        vi.advanceTimersByTime(900);
        res.emit("drain");
      }
      vi.advanceTimersByTime(5000);
      expect(res.stream.close).not.toHaveBeenCalled();
    } finally {
      vi.useRealTimers();
    }
  });

  it("is off with zero", () => {
    const res = fakeResponse([false]);
    const write = res.write;
    watchStalledReader(res as never, { stalledMs: 0 });
    expect(res.write).toBe(write);
  });
});

describe("--stalled-reader-ms", () => {
  it("defaults to 60000 and reads a number", () => {
    const base = ["--data-dir", "/tmp/drce-config-test"];
    expect((parseServeConfig(base, {}) as { stalledReaderMs: number }).stalledReaderMs).toBe(60_000);
    expect((parseServeConfig([...base, "--stalled-reader-ms", "0"], {}) as { stalledReaderMs: number }).stalledReaderMs).toBe(0);
    expect(() => parseServeConfig([...base, "--stalled-reader-ms", "soon"], {})).toThrow(/--stalled-reader-ms must be a non-negative integer/);
  });
});
