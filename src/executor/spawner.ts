import { fork, spawn as spawnProcess, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { buildNativeSpawner } from "./native-spawner-build.js";
import { cancelFrame, createFrameReader, decodeAnswer, Placement, releaseFrame, spawnFrame, type NativeAnswer } from "./spawner-frames.js";
import { streamHeader, tokenLength, type SpawnerMessage, type SpawnMessage } from "./spawner-protocol.js";
import type { SpawnRequest, CgroupPlacement, ProcessExit, SpawnResult, Spawner, SpawnerKind, SpawnerOptions } from "./spawner-types.js";

export type { SpawnRequest, CgroupPlacement, ProcessExit, SpawnedProcess, SpawnResult, Spawner, SpawnerKind, SpawnerOptions } from "./spawner-types.js";

/** Where the spawner's entry is: beside this module, compiled (dist/) or as TypeScript (src/). */
function spawnerEntry(): { path: string; execArgv: string[] } {
  const here = import.meta.url;
  if (here.endsWith(".ts")) return { path: fileURLToPath(new URL("./spawner-main.ts", here)), execArgv: ["--import", "tsx"] };
  return { path: fileURLToPath(new URL("./spawner-main.mjs", here)), execArgv: [] };
}

/** Spawns waiting for their answer at once, at most (three connections each). */
const maxStarting = 128;

/** The most a read of a command's output takes at once (a Unix socket buffers about 200 KiB). */
const outputReadBytes = 256 * 1024;

/** An answer as both spawners give it ("spawned" of the native one also says where the command is). */
type Answer =
  | Exclude<SpawnerMessage, { type: "spawned" }>
  | { readonly type: "spawned"; readonly id: number; readonly pid: number; readonly placement?: CgroupPlacement; readonly placementErrno?: number };

/** What the node sends a spawner, whichever it is. */
type Request =
  | (SpawnMessage & { readonly cgroupDirs: readonly string[] })
  | { readonly type: "cancel"; readonly token: string }
  | { readonly type: "release"; readonly id: number };

/** One spawner process and what it has in flight. */
interface Helper {
  readonly child: ChildProcess;
  readonly kind: SpawnerKind;
  readonly socketName: string;
  readonly ready: Promise<void>;
  /** Spawns waiting for "spawned" or "failed". */
  readonly starting: Map<number, (message: Answer) => void>;
  /** Running commands waiting for "exit". */
  readonly running: Map<number, { resolve: (exit: ProcessExit) => void; reject: (error: Error) => void }>;
  /** Counts answers awaited (+1 per request, -1 per answer); the channel is referenced while any are. */
  readonly awaiting: (change: number) => void;
  /** Sends a request; one sent on a closed channel is dropped (stopped() answers what waits). */
  readonly send: (request: Request) => void;
  /** Whether the channel to the spawner is open. */
  readonly connected: () => boolean;
  /** Closes the channel: the spawner exits (killing the unreleased groups, with killOnDisconnect). */
  readonly disconnect: () => void;
}

/** Where the native spawner puts a command, as its "spawned" answer numbers it. */
const placements: Record<number, CgroupPlacement> = {
  [Placement.None]: "none",
  [Placement.Cloned]: "cloned",
  [Placement.Written]: "written",
  [Placement.Failed]: "failed",
};

/**
 * Creates a spawner: a small process, started once (on the first spawn, and again if it
 * ever stops), that starts commands for this process. It is the native spawner
 * (native/spawner.c, compiled with `cc` on first use; see buildNativeSpawner) where that
 * can be built, else a Node.js process (spawner-main.ts); both take the streams the same
 * way and keep the same guarantees, and only the native one can create a command in its
 * control group ({@link SpawnRequest.cgroupDirs}). A process that forks pays for the
 * size of its own memory, and libuv forks on the event loop and waits there until the child
 * has called execve; a node holding hundreds of megabytes would spend milliseconds of its
 * event loop on every task. The spawner is small and does nothing else, so the node's event
 * loop only sends a message and connects three local sockets.
 *
 * The command's stdin, stdout and stderr are Unix stream sockets the node connects to the
 * spawner, which hands the accepted ends to the command and closes its own copies; child
 * processes get socket pairs from libuv for 'pipe' too, so a command sees the same kind of
 * file either way. The listening socket is in a directory of its own that only this
 * process's user can enter, and each connection opens with the spawn's random token, so a
 * process that does not know it cannot claim a command's streams.
 *
 * At most {@link maxStarting} spawns wait for their answer at once (the rest queue here), so
 * a burst of tasks never has more connections pending than the spawner's listen backlog.
 */
export function createSpawner(options: SpawnerOptions = {}): Spawner {
  let helper: Helper | undefined;
  let nextId = 1;
  let startingNow = 0;
  const queued: (() => void)[] = [];
  const startSlot = async (): Promise<void> => {
    if (startingNow < maxStarting) {
      startingNow++;
      return;
    }
    await new Promise<void>((resolve) => queued.push(resolve));
  };
  const endSlot = (): void => {
    const next = queued.shift();
    if (next !== undefined) next();
    else startingNow--;
  };

  let chosen: Promise<string | undefined> | undefined;
  /** Resolves to the native spawner's binary, or undefined for the Node.js spawner (chosen once). */
  const choose = (): Promise<string | undefined> =>
    (chosen ??= (async () => {
      const implementation = options.implementation ?? (process.env["DRCE_SPAWNER"] === "node" ? "node" : "auto");
      if (implementation === "node") return undefined;
      const built = await buildNativeSpawner({ cacheDir: options.cacheDir, path: options.compilerPath }).catch((error: unknown) => ({ ok: false as const, reason: `the native spawner's source cannot be read: ${String(error)}` }));
      if (built.ok) return built.path;
      options.onFallback?.(built.reason);
      return undefined;
    })());
  let chosenKind: SpawnerKind | undefined;

  const start = (binary: string | undefined): Helper => {
    // mkdtemp makes the directory 0700: only this user can reach the socket in it. The
    // spawner removes it when it exits on its own; stopped() and close() do otherwise.
    const socketDir = mkdtempSync(join(tmpdir(), "drce-spawner-"));
    const socketName = join(socketDir, "socket");
    const spawnerArgs = [socketName, ...(options.killOnDisconnect === true ? ["kill-on-disconnect"] : [])];
    let child: ChildProcess;
    let control: Socket | undefined;
    if (binary === undefined) {
      const entry = spawnerEntry();
      child = fork(entry.path, spawnerArgs, { execArgv: entry.execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "json" });
    } else {
      // The native spawner's channel is a socket pair as its fd 3 (spawner-frames.ts).
      child = spawnProcess(binary, spawnerArgs, { stdio: ["ignore", "inherit", "inherit", "pipe"] });
      control = child.stdio[3] as Socket;
    }
    const starting = new Map<number, (message: Answer) => void>();
    const running = new Map<number, { resolve: (exit: ProcessExit) => void; reject: (error: Error) => void }>();
    let markReady: () => void = () => undefined;
    let markFailed: (error: Error) => void = () => undefined;
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      markFailed = reject;
    });
    ready.catch(() => undefined); // every spawn awaits ready and gets its failure; this only keeps a spawner that dies before any spawn from an unhandled rejection
    const channelRef = (): void => void (control === undefined ? child.channel?.ref() : control.ref());
    const channelUnref = (): void => void (control === undefined ? child.channel?.unref() : control.unref());
    // The channel keeps this process alive only while an answer is awaited: an idle
    // spawner never holds a node up, and a node waiting for a command's exit is not left.
    let waiting = 0;
    const awaiting = (change: number): void => {
      const before = waiting;
      waiting += change;
      if (before === 0 && waiting > 0) channelRef();
      else if (before > 0 && waiting === 0) channelUnref();
    };
    const onAnswer = (message: Answer): void => {
      if (message.type === "ready") {
        awaiting(-1);
        return markReady();
      }
      if (message.type === "exit") {
        const waiter = running.get(message.id);
        if (waiter === undefined) return;
        running.delete(message.id);
        awaiting(-1);
        return waiter.resolve({ code: message.code, signal: message.signal });
      }
      const answer = starting.get(message.id);
      if (answer === undefined) return;
      starting.delete(message.id);
      awaiting(-1);
      answer(message);
    };
    if (control === undefined) {
      child.on("message", onAnswer);
    } else {
      const native = control;
      native.on(
        "data",
        createFrameReader((payload) => {
          const answer: NativeAnswer | undefined = decodeAnswer(payload);
          if (answer === undefined) return;
          onAnswer(answer.type === "spawned" ? { type: "spawned", id: answer.id, pid: answer.pid, placement: placements[answer.placement] ?? "failed", placementErrno: answer.placementErrno } : answer);
        }),
      );
      native.on("error", () => undefined); // a channel that fails is a spawner that stops: its exit answers everything waiting
    }
    const connected = (): boolean => (control === undefined ? child.connected : !control.destroyed && control.writable);
    const send = (request: Request): void => {
      if (!connected()) return;
      try {
        if (control === undefined) {
          if (request.type === "spawn") {
            // The Node.js spawner cannot place a command into a group: it gets no groups.
            const { cgroupDirs: _ignored, ...message } = request;
            child.send(message);
          } else child.send(request);
        } else if (request.type === "spawn") control.write(spawnFrame(request));
        else if (request.type === "cancel") control.write(cancelFrame(request.token));
        else control.write(releaseFrame(request.id));
      } catch {
        // The channel closed meanwhile: stopped() answers what waits.
      }
    };
    const stopped = (why: string): void => {
      if (helper?.child === child) helper = undefined;
      // An 'error' need not mean the process is gone: it must not stay, unknown to us.
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      channelUnref();
      control?.destroy();
      rmSync(socketDir, { recursive: true, force: true });
      const error = new Error(`the process spawner stopped (${why})`);
      markFailed(error);
      for (const answer of starting.values()) answer({ type: "failed", id: 0, code: "ESPAWNER", message: error.message });
      for (const waiter of running.values()) waiter.reject(error);
      starting.clear();
      running.clear();
      waiting = 0;
    };
    child.on("error", (error) => stopped(error.message));
    child.on("exit", (code, signal) => stopped(signal ?? `exit ${code}`));
    // An idle spawner never keeps the node alive (see awaiting); the spawner follows a node
    // that exits, when its channel closes.
    child.unref();
    channelUnref();
    awaiting(1); // "ready"
    const disconnect = (): void => {
      if (control === undefined) {
        if (child.connected) child.disconnect();
      } else control.destroy();
    };
    return { child, kind: binary === undefined ? "node" : "native", socketName, ready, starting, running, awaiting, send, connected, disconnect };
  };

  const connectStream = (socketName: string, token: string, fd: 0 | 1 | 2): Socket => {
    const socket = connect(socketName);
    socket.write(streamHeader(token, fd));
    return socket;
  };

  /**
   * Connects an output stream that reads into one buffer of its own, reused: each read is
   * written to `sink`, and the next is made once that write is done. A stream read the
   * usual way gets a fresh 64 KiB buffer per read, a gigabyte of them per gigabyte of
   * output, which V8 then has to collect; reads here also take up to 256 KiB at once.
   * Resolves once the stream closed; a sink that fails stops it (as a pipeline would).
   */
  const connectOutput = (socketName: string, token: string, fd: 1 | 2, sink: Writable): { socket: Socket; done: Promise<void> } => {
    const buffer = Buffer.allocUnsafe(outputReadBytes);
    let socket: Socket;
    const onWritten = (error?: Error | null): void => {
      if (error) socket.destroy();
      else socket.resume();
    };
    socket = connect({
      path: socketName,
      onread: {
        buffer,
        callback: (bytes: number, data: Uint8Array): boolean => {
          sink.write(data.subarray(0, bytes), onWritten);
          return false; // paused until the write is done: the buffer is the sink's until then
        },
      },
    });
    socket.write(streamHeader(token, fd));
    socket.on("error", () => undefined); // a dropped output connection ends the reading; the command's end comes on the channel
    // The sink's owner learns of its failure from the sink (the spool keeps the errno); here
    // it only ends the reading, and is not an uncaught exception, even for a write that
    // fails after the reading ended (the listener stays: a sink serves one command).
    sink.once("error", () => socket.destroy());
    return { socket, done: new Promise<void>((resolve) => socket.once("close", () => resolve())) };
  };

  return {
    get pid() {
      return helper?.child.pid;
    },
    get socketPath() {
      return helper?.socketName;
    },
    get kind() {
      return chosenKind;
    },
    async placesIntoCgroups() {
      return (await choose()) !== undefined;
    },
    async spawn(request) {
      await startSlot();
      try {
        let current: Helper;
        try {
          const binary = await choose();
          chosenKind = binary === undefined ? "node" : "native";
          current = helper ??= start(binary);
          await current.ready;
        } catch (error) {
          return { ok: false, code: "ESPAWNER", message: (error as Error).message };
        }
        return await spawnWith(current, request);
      } finally {
        endSlot();
      }
    },
    async close() {
      const current = helper;
      helper = undefined;
      if (current === undefined || current.child.exitCode !== null || current.child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => current.child.once("exit", () => resolve()));
      // Waiting for it must keep this process alive (it is unreferenced while it runs).
      current.child.ref();
      current.disconnect();
      await exited;
    },
  };

  async function spawnWith(current: Helper, request: SpawnRequest): Promise<SpawnResult> {
    const id = nextId++;
    const token = randomBytes(tokenLength / 2).toString("hex");
    const stdin = connectStream(current.socketName, token, 0);
    const stdout = connectOutput(current.socketName, token, 1, request.stdout);
    const stderr = connectOutput(current.socketName, token, 2, request.stderr);
    const streams = [stdin, stdout.socket, stderr.socket];
    // A connection the spawner refuses or drops shows up as the command's end of input or
    // output, never as an exception of the node.
    stdin.on("error", () => undefined);
    // Nothing comes back on stdin's connection; reading it lets its end be noticed.
    stdin.resume();
    const answer = new Promise<Answer>((resolve) => current.starting.set(id, resolve));
    current.awaiting(2); // "spawned" (or "failed"), then "exit"
    // A stream that cannot connect (a full backlog: EAGAIN) fails the spawn at once: the
    // spawner would wait for it in vain. It forgets the spawn on "cancel".
    const connectFailed = (error: NodeJS.ErrnoException): void => {
      const answerNow = current.starting.get(id);
      if (answerNow === undefined) return;
      current.starting.delete(id);
      current.awaiting(-1);
      current.send({ type: "cancel", token });
      answerNow({ type: "failed", id, code: error.code ?? "ECONNREFUSED", message: `cannot connect the command's streams: ${error.message}` });
    };
    for (const socket of streams) socket.once("error", connectFailed);
    const message: Request = {
      type: "spawn",
      cgroupDirs: request.cgroupDirs ?? [],
      id,
      token,
      file: request.file,
      args: request.args,
      cwd: request.cwd,
      env: request.env,
      ...(request.uid === undefined ? {} : { uid: request.uid }),
      ...(request.gid === undefined ? {} : { gid: request.gid }),
    };
    // The exit waiter is in place before the spawn is sent, so no message is missed.
    const exit = new Promise<ProcessExit>((resolve, reject) => current.running.set(id, { resolve, reject }));
    exit.catch(() => undefined); // awaited once the spawn is answered; a spawn refused first never awaits it, and its refusal is what the caller gets
    // A channel closed since the spawner was ready drops it: stopped() answers "failed".
    current.send(message);
    const reply = await answer;
    for (const socket of streams) socket.off("error", connectFailed);
    if (reply.type !== "spawned") {
      if (current.running.delete(id)) current.awaiting(-1);
      for (const socket of streams) socket.destroy();
      return reply.type === "failed" ? { ok: false, code: reply.code, message: reply.message } : { ok: false, code: "", message: "unexpected answer" };
    }
    return {
      ok: true,
      process: {
        pid: reply.pid,
        cgroupPlacement: reply.placement ?? "none",
        cgroupError: reply.placement === "failed" ? `errno ${reply.placementErrno ?? 0}` : undefined,
        stdin,
        exit,
        output: Promise.all([stdout.done, stderr.done]).then(() => undefined),
        dropOutput: () => {
          stdout.socket.destroy();
          stderr.socket.destroy();
        },
        // A channel closed meanwhile drops it: the spawner is gone and kills nothing any more.
        release: () => current.send({ type: "release", id }),
      },
    };
  }
}
