import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { TaskMode, TaskSpecSchema, type TaskResult } from "../../gen/drce/v1/task_pb.js";
import { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { isFinalState } from "../domain/states.js";
import { callErrorFrom } from "./drce-call-error.js";
import { stateFromProto } from "./from-proto.js";
import { createServiceClient, type ClientTls } from "./service-client.js";
import { followEventFrom, runEventFrom, type FollowEvent, type GapEvent, type RunEvent } from "./task-events.js";
import { writeWithBackpressure } from "./write-with-backpressure.js";

/** A task as a caller writes it: the fields of a `TaskSpec` it sets, e.g. `{ argv: ["make", "test"] }`. */
export type TaskSpecInit = MessageInitShape<typeof TaskSpecSchema>;

/** PEM material for an https:// node, as text or bytes; each one optional. */
export interface DrceTlsOptions {
  /** CA certificates trusted for the node's certificate, instead of the system's. */
  readonly ca?: string | Uint8Array;
  /** Client certificate presented to a node that requires one (mTLS). */
  readonly cert?: string | Uint8Array;
  /** Private key of the client certificate. */
  readonly key?: string | Uint8Array;
}

/** Options of {@link createDrceClient}: where the node is and how to reach it. */
export interface DrceClientOptions {
  /** The node's URL, `http://` or `https://`, with no path (the API is at its root), e.g. `http://127.0.0.1:8470`. */
  readonly server: string;
  /** Bearer token the node requires (its `--token`); absent or empty sends none. */
  readonly token?: string;
  /** TLS material for an https:// node: a private CA, a client certificate and key. */
  readonly tls?: DrceTlsOptions;
  /**
   * Milliseconds a node may take to answer a new connection (TCP, TLS, an HTTP/2 PING);
   * past it calls fail with Unavailable. Absent: 10 000, as the CLI; zero waits for ever.
   * A call that rightly waits long for its first message (a run, a follow) is not cut.
   */
  readonly connectTimeoutMs?: number;
}

/** Options of a call that may take long: aborting the signal cancels the call. */
export interface CallOptions {
  /** Cancels the call; for {@link DrceClient.run} it also terminates the task. */
  readonly signal?: AbortSignal;
}

/** Options of {@link DrceClient.follow}: where to start in each stream, and whether to wait for more. */
export interface FollowOptions extends CallOptions {
  /** Offset in stdout to start from (bytes already read); default 0. */
  readonly stdoutOffset?: number;
  /** Offset in stderr to start from; default 0. */
  readonly stderrOffset?: number;
  /** Keep streaming until the task ends (default true); false stops at what is written so far. */
  readonly follow?: boolean;
}

/** Options of {@link DrceClient.fetchOutput}: where the output goes, and whether the task is deleted after. */
export interface FetchOutputOptions extends CallOptions {
  /** Where the task's stdout is written; absent: it is not read. */
  readonly stdout?: NodeJS.WritableStream;
  /** Where the task's stderr is written; absent: it is not read. */
  readonly stderr?: NodeJS.WritableStream;
  /** Delete the task's data on the node once the result was fetched (default false). */
  readonly delete?: boolean;
}

/** What {@link DrceClient.fetchOutput} wrote, and the task's result. */
export interface FetchedOutput {
  /** The task's final result (its inline output is at most the node's `--inline-output-bytes`). */
  readonly result: TaskResult;
  /** Bytes written to the `stdout` stream given. */
  readonly stdoutBytes: number;
  /** Bytes written to the `stderr` stream given. */
  readonly stderrBytes: number;
  /** Where the node kept only the head and the tail of a stream: the bytes missing from what was written. */
  readonly gaps: readonly GapEvent[];
}

/** What {@link DrceClient.submit} answers: the task as submitted, and whether it existed already. */
export interface Submitted {
  /** The task's result so far (state new or queued for an async task; final for a sync one). */
  readonly result: TaskResult;
  /** True when a task with this id and the same request existed: nothing new was started. */
  readonly existing: boolean;
}

/**
 * A client of one drce node: the generated TaskService client (`tasks`) and, over it, the
 * calls every program writes otherwise. Every failed call rejects with a
 * {@link DrceCallError} carrying its Connect code and legacy error code; a task that ran and
 * failed is a result, never an error.
 */
export interface DrceClient {
  /** The generated TaskService client on the same connection, for the calls not wrapped here (its errors are ConnectErrors; pass them to `callErrorFrom`). */
  readonly tasks: Client<typeof TaskService>;
  /**
   * Runs a task attached (RunTask): yields `accepted`, then its output and gaps as they are
   * produced, then its `result`. Every byte the command wrote arrives, whatever the node's
   * output cap. Stopping the iteration early, or aborting the signal, terminates the task.
   */
  run(spec: TaskSpecInit, options?: CallOptions): AsyncIterable<RunEvent>;
  /** Submits a task, async unless the spec says otherwise, and answers at once with its id and state. */
  submit(spec: TaskSpecInit, options?: CallOptions): Promise<Submitted>;
  /**
   * Submits a task in sync mode and resolves with its final result once it and its sync
   * subtasks are done. Output beyond the node's `--inline-output-bytes` is not in the
   * result: read it with {@link DrceClient.fetchOutput} or {@link DrceClient.follow}.
   */
  submitAndWait(spec: TaskSpecInit, options?: CallOptions): Promise<TaskResult>;
  /** Waits for a task (by id or alias) to reach a final state and resolves with its result. */
  wait(task: string, options?: CallOptions): Promise<TaskResult>;
  /**
   * Streams a task's output from the given offsets (StreamTaskOutput): output and gaps, then
   * the result once the task ended. With `follow` (the default) it waits for more output
   * until the task ends.
   */
  follow(task: string, options?: FollowOptions): AsyncIterable<FollowEvent>;
  /**
   * Writes a task's output to the streams given as it arrives, with backpressure, never
   * holding it in memory, waiting for the task to end; then fetches its result (deleting
   * the task when `delete` is set).
   */
  fetchOutput(task: string, options?: FetchOutputOptions): Promise<FetchedOutput>;
  /** Closes the connection, so that the process can exit at once. */
  close(): void;
}

/** The connect timeout a client uses when its options give none: the CLI's default. */
export const defaultConnectTimeoutMs = 10_000;

/**
 * Creates a {@link DrceClient} of the node at `options.server`, over its own HTTP/2
 * connection (the CLI's transport: wide flow-control windows, a connect timeout, the bearer
 * token, TLS material). The options are checked once: a URL that is not http(s) or has a
 * path throws a TypeError.
 */
export function createDrceClient(options: DrceClientOptions): DrceClient {
  const server = checkedServer(options.server);
  const connectTimeoutMs = options.connectTimeoutMs ?? defaultConnectTimeoutMs;
  if (!Number.isFinite(connectTimeoutMs) || connectTimeoutMs < 0) throw new TypeError(`connectTimeoutMs must be a non-negative number of milliseconds, got ${connectTimeoutMs}`);
  const handle = createServiceClient(TaskService, { server, token: options.token ?? "", tls: pemBytes(options.tls ?? {}), connectTimeoutMs });
  const tasks = handle.client;

  async function call<T>(body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      throw callErrorFrom(error);
    }
  }

  async function* stream<M, E>(messages: (signal: AbortSignal) => AsyncIterable<M>, convert: (message: M) => E | undefined, signal: AbortSignal | undefined): AsyncGenerator<E> {
    // A caller that stops iterating early must end the call itself: returning from the
    // generated client's iterator leaves its HTTP/2 stream open, and a run's task running.
    const ended = new AbortController();
    try {
      for await (const message of messages(signal === undefined ? ended.signal : AbortSignal.any([signal, ended.signal]))) {
        const event = convert(message);
        if (event !== undefined) yield event;
      }
    } catch (error) {
      throw callErrorFrom(error);
    } finally {
      ended.abort();
    }
  }

  async function submit(spec: TaskSpecInit, mode: TaskMode, signal: AbortSignal | undefined): Promise<Submitted> {
    const task = create(TaskSpecSchema, { ...spec, mode: spec.mode === undefined || spec.mode === TaskMode.UNSPECIFIED ? mode : spec.mode });
    const response = await call(() => tasks.submitTask({ task }, withSignal(signal)));
    return { result: required(response.result), existing: response.existing };
  }

  return {
    tasks,
    run(spec, callOptions = {}) {
      // Ending the iteration early ends the call, and the node terminates a task whose caller went away.
      return stream((signal) => tasks.runTask({ task: create(TaskSpecSchema, spec) }, { signal }), runEventFrom, callOptions.signal);
    },
    submit: (spec, callOptions = {}) => submit(spec, TaskMode.ASYNC, callOptions.signal),
    async submitAndWait(spec, callOptions = {}) {
      return (await submit({ ...spec, mode: TaskMode.SYNC }, TaskMode.SYNC, callOptions.signal)).result;
    },
    async wait(task, callOptions = {}) {
      return call(() => waitFor(tasks, task, callOptions.signal));
    },
    follow(task, followOptions = {}) {
      const request = {
        task,
        stdoutOffset: BigInt(followOptions.stdoutOffset ?? 0),
        stderrOffset: BigInt(followOptions.stderrOffset ?? 0),
        follow: followOptions.follow ?? true,
      };
      return stream((signal) => tasks.streamTaskOutput(request, { signal }), followEventFrom, followOptions.signal);
    },
    async fetchOutput(task, fetchOptions = {}) {
      const { stdout, stderr, signal } = fetchOptions;
      const gaps: GapEvent[] = [];
      const written = { stdout: 0, stderr: 0 };
      // A stream nobody reads is not asked for: its offset starts past any end it can have.
      const unread = BigInt(Number.MAX_SAFE_INTEGER);
      const request = { task, follow: true, stdoutOffset: stdout === undefined ? unread : 0n, stderrOffset: stderr === undefined ? unread : 0n };
      for await (const event of stream((callSignal) => tasks.streamTaskOutput(request, { signal: callSignal }), followEventFrom, signal)) {
        if (event.kind !== "output" && event.kind !== "gap") continue;
        const sink = event.stream === "stdout" ? stdout : stderr;
        if (sink === undefined) continue;
        if (event.kind === "gap") {
          gaps.push(event);
          continue;
        }
        await writeWithBackpressure(sink, event.data, signal);
        written[event.stream] += event.data.byteLength;
      }
      const response = await call(() => tasks.fetchTask({ task, delete: fetchOptions.delete === true }, withSignal(signal)));
      return { result: required(response.result), stdoutBytes: written.stdout, stderrBytes: written.stderr, gaps };
    },
    close: () => handle.close(),
  };
}

/**
 * Waits for a final state. The watch replays the task's kept events first, so an end that
 * comes between the check and the watch is not missed; the check answers for a task whose
 * events the node no longer keeps.
 */
async function waitFor(tasks: Client<typeof TaskService>, task: string, signal: AbortSignal | undefined): Promise<TaskResult> {
  const watching = new AbortController();
  const stop = signal === undefined ? watching.signal : AbortSignal.any([signal, watching.signal]);
  const events = tasks.watchTaskEvents({ task, fromStart: true }, { signal: stop })[Symbol.asyncIterator]();
  // The first next() sends the request, so the watch is on its way before the check.
  let next = events.next();
  next.catch(() => undefined); // awaited below unless the check already answers; then the watch is aborted on purpose
  try {
    const current = required((await tasks.getTask({ task }, withSignal(signal))).result);
    if (isFinalState(stateFromProto(current.state))) return current;
    for (;;) {
      const message = await next;
      if (message.done === true) break;
      if (message.value.event !== undefined && isFinalState(stateFromProto(message.value.event.state))) break;
      next = events.next();
    }
    return required((await tasks.getTask({ task }, withSignal(signal))).result);
  } finally {
    watching.abort();
  }
}

function withSignal(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal === undefined ? {} : { signal };
}

function required(result: TaskResult | undefined): TaskResult {
  if (result === undefined) throw new Error("the node answered without a result");
  return result;
}

function checkedServer(server: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new TypeError(`server ${JSON.stringify(server)} is not a URL (e.g. http://127.0.0.1:8470)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new TypeError(`server ${server}: use an http:// or https:// URL`);
  // The API lives at the root; a path (often the legacy /drce) would only meet 404s.
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "") throw new TypeError(`server ${server}: a node's URL has no path, the API is at its root (use ${url.protocol}//${url.host})`);
  return server;
}

function pemBytes(tls: DrceTlsOptions): ClientTls {
  const bytes = (pem: string | Uint8Array): Uint8Array => (typeof pem === "string" ? new TextEncoder().encode(pem) : pem);
  return {
    ...(tls.ca === undefined ? {} : { ca: bytes(tls.ca) }),
    ...(tls.cert === undefined ? {} : { cert: bytes(tls.cert) }),
    ...(tls.key === undefined ? {} : { key: bytes(tls.key) }),
  };
}
