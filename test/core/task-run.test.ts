import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/domain/errors.js";
import { TaskState } from "../../src/domain/states.js";
import { defaultTerminate, type TerminateOptions } from "../../src/domain/task.js";
import type { ExecHandle, ExecOutcome } from "../../src/executor/runner.js";
import { TaskRun } from "../../src/core/task-run.js";
import { expiryTerminate, shutdownTerminate, TerminateAlg } from "../../src/core/terminate-policies.js";

const terminated = { state: TaskState.Terminated, errorCode: ErrorCode.None, message: "" } as const;
const expired = { state: TaskState.Expired, errorCode: ErrorCode.TerminatedExpired, message: "time limit passed" } as const;

/** A handle that records the terminates it gets and ends when the test says. */
function recordingHandle(): { handle: ExecHandle; terminations: TerminateOptions[]; end: () => void } {
  const terminations: TerminateOptions[] = [];
  let end!: () => void;
  const done = new Promise<ExecOutcome>((resolve) => (end = () => resolve({ kind: "exited", exitStatus: 0, signal: "", escapedPids: [] })));
  return {
    terminations,
    end,
    handle: { done, terminate: async (options) => void terminations.push(options), writeInput: async () => undefined, endInput: () => undefined },
  };
}

/** Tells whether a promise has settled, after the microtasks queued so far have run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe("a task run", () => {
  it("resolves started when its command runs and done when it is final, each once", async () => {
    const run = new TaskRun();
    expect(run.state.kind).toBe("pending");
    run.setState({ kind: "waiting" });
    run.setState({ kind: "starting" });
    expect(await settled(run.started)).toBe(false);
    const { handle } = recordingHandle();
    run.setState({ kind: "running", handle });
    expect(await settled(run.started)).toBe(true);
    expect(run.handle).toBe(handle);
    expect(await settled(run.done)).toBe(false);
    run.setState({ kind: "settling" });
    expect(run.handle).toBeUndefined();
    run.setState({ kind: "done" });
    expect(await settled(run.done)).toBe(true);
    expect(run.live).toBe(false);
  });

  it("resolves started when it ends without ever running (a refused or cancelled task)", async () => {
    const run = new TaskRun();
    run.setState({ kind: "waiting" });
    run.setState({ kind: "done" });
    expect(await settled(run.started)).toBe(true);
    expect(await settled(run.done)).toBe(true);
  });

  it("never goes back to an earlier phase, nor ends twice", () => {
    const run = new TaskRun();
    run.setState({ kind: "starting" });
    expect(() => run.setState({ kind: "waiting" })).toThrow(/from starting to waiting/);
    run.setState({ kind: "done" });
    expect(() => run.setState({ kind: "done" })).toThrow(/from done to done/);
  });

  it("keeps the first stop reason: a later one changes nothing", async () => {
    const run = new TaskRun();
    run.setState({ kind: "waiting" });
    await run.stop(terminated, defaultTerminate);
    await run.stop(expired, expiryTerminate);
    expect(run.stopReason).toEqual(terminated);
    expect(run.signal.aborted).toBe(true);
  });

  it("terminates a running command by the policy the stop names", async () => {
    const run = new TaskRun();
    const { handle, terminations } = recordingHandle();
    run.setState({ kind: "running", handle });
    const alg2 = { alg: TerminateAlg.Signal, delayMs: 10, repeat: 1, signal: 9, cleanup: false } as const;
    await run.stop(terminated, alg2);
    expect(terminations).toEqual([alg2]);
  });

  it("applies a stop that came while the command was starting once it runs, by the default policy", async () => {
    const run = new TaskRun();
    run.setState({ kind: "starting" });
    await run.stop(expired, expiryTerminate);
    const { handle, terminations } = recordingHandle();
    run.setState({ kind: "running", handle });
    expect(terminations).toEqual([defaultTerminate]);
    expect(run.stopReason).toEqual(expired);
  });

  it("leaves a run that is done alone", async () => {
    const run = TaskRun.finished();
    await run.stop(terminated, defaultTerminate);
    expect(run.stopReason).toBeUndefined();
    expect(run.signal.aborted).toBe(false);
  });

  it("calls a deadline that passes while it is live, and none once it is done", async () => {
    const run = new TaskRun();
    run.setState({ kind: "waiting" });
    let fired = 0;
    let passed!: () => void;
    const firstPassed = new Promise<void>((resolve) => (passed = resolve));
    run.deadline(1, async () => {
      fired++;
      passed();
    });
    await firstPassed;
    run.deadline(1, async () => void fired++);
    run.setState({ kind: "done" });
    // The second deadline was cleared with the run: a later timer tick finds nothing to call.
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(fired).toBe(1);
  });

  it("clears a deadline early when asked, and arms none for an infinite time", async () => {
    const run = new TaskRun();
    let fired = 0;
    const clear = run.deadline(1, async () => void fired++);
    clear();
    run.deadline(Number.POSITIVE_INFINITY, async () => void fired++)();
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(fired).toBe(0);
  });

  it("names its terminate policies: expiry is SIGTERM then SIGKILL a second apart, shutdown fits its grace", () => {
    expect(expiryTerminate).toEqual({ alg: TerminateAlg.TermThenKill, delayMs: 1000, repeat: 3, signal: 9, cleanup: false });
    expect(shutdownTerminate(2000)).toEqual({ alg: TerminateAlg.TermThenKill, delayMs: 500, repeat: 2, signal: 9, cleanup: false });
    expect(shutdownTerminate(100).delayMs).toBe(100);
  });
});
