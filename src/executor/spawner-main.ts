// The spawner: a small Node.js process a node forks once, which starts the node's local
// commands for it (see spawner.ts for why). Usage (by the node only):
//   node spawner-main.mjs SOCKET [kill-on-disconnect]     with an IPC channel to the node
// It listens on the Unix socket SOCKET (in a directory only the node's user can enter),
// takes spawn messages on the IPC channel, and exits when the channel closes; with
// kill-on-disconnect it first kills the process group of every command it started that the
// node had not released (its spawn record not yet durable).
import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { dirname } from "node:path";
import {
  headerLength,
  headerTimeoutMs,
  pendingTimeoutMs,
  tokenLength,
  type CancelMessage,
  type ReleaseMessage,
  type SpawnerMessage,
  type SpawnMessage,
} from "./spawner-protocol.js";

/** A spawn waiting for its message or its three stream connections. */
interface Pending {
  message: SpawnMessage | undefined;
  readonly streams: (Socket | undefined)[];
  /** Drops connections whose spawn never comes (a node that died, or a stranger guessing). */
  readonly expiry: NodeJS.Timeout;
}

const socketPath = process.argv[2];
const killOnDisconnect = process.argv[3] === "kill-on-disconnect";
if (socketPath === undefined || process.send === undefined) {
  console.error("drce spawner: started by a node only (socket path and IPC channel)");
  process.exit(2);
}
/** Removes the socket and its private directory (the node made the directory for it). */
const removeSocket = (): void => rmSync(dirname(socketPath), { recursive: true, force: true });
const send = (message: SpawnerMessage): void => {
  if (process.connected) process.send?.(message);
};

/**
 * Process groups of the commands started here (each leader heads its own) that the node has
 * not released, by spawn id, while they may have members. A node that dies while a spawn is
 * in flight has not heard of the command, or has not recorded it: its restart cannot know
 * it, so these groups are killed here when the channel closes (with kill-on-disconnect).
 */
const groups = new Map<number, number>();
/** Groups whose leader exited while other members remained (a task's children still draining). */
const lingering = new Set<number>();
const groupAlive = (pgid: number): boolean => {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    // ESRCH: no member of the group is left.
    return false;
  }
};
// A group is forgotten once it is empty: its number may then be given to a new process,
// which must never be signalled. The node kills a finished task's rest within a drain
// period, so this sweep finds few groups, and none for long.
const sweepLingering = (): void => {
  for (const pgid of lingering) if (!groupAlive(pgid)) lingering.delete(pgid);
  if (lingering.size === 0) clearInterval(lingeringSweep);
};
let lingeringSweep: NodeJS.Timeout | undefined;
const trackExit = (id: number, pgid: number): void => {
  // A released group is the node's; one already empty is forgotten.
  if (!groups.delete(id) || !groupAlive(pgid)) return;
  lingering.add(pgid);
  if (lingering.size === 1) {
    lingeringSweep = setInterval(sweepLingering, 1000);
    lingeringSweep.unref();
  }
};
/** Kills every group this spawner started that may still have a process. */
const killGroups = (): void => {
  for (const pgid of [...groups.values(), ...lingering]) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // ESRCH: the group is gone already.
    }
  }
};

const pending = new Map<string, Pending>();
const pendingFor = (token: string): Pending => {
  let entry = pending.get(token);
  if (entry === undefined) {
    const expiry = setTimeout(() => {
      pending.delete(token);
      for (const socket of entry?.streams ?? []) socket?.destroy();
      // A spawn the node is waiting for is answered: its streams never all arrived.
      if (entry?.message !== undefined) send({ type: "failed", id: entry.message.id, code: "ETIMEDOUT", message: "the command's streams did not all connect" });
    }, pendingTimeoutMs);
    expiry.unref();
    entry = { message: undefined, streams: [undefined, undefined, undefined], expiry };
    pending.set(token, entry);
  }
  return entry;
};

function startWhenComplete(token: string, entry: Pending): void {
  const { message, streams } = entry;
  if (message === undefined || streams.some((socket) => socket === undefined)) return;
  pending.delete(token);
  clearTimeout(entry.expiry);
  const [stdin, stdout, stderr] = streams as Socket[];
  const closeStreams = (): void => {
    for (const socket of streams) socket?.destroy();
  };
  // The accepted sockets become the command's fds 0, 1 and 2. child_process rather than
  // execa: nothing here needs execa's buffering, encodings or promise, and on this path
  // they cost about 1.8 ms of CPU per command (measured with 32 callers of sync `true`:
  // 3.1 ms of the spawner's CPU per task with execa, 1.3 ms without).
  let child: ChildProcess;
  try {
    child = spawn(message.file, [...message.args], {
      ...(message.uid === undefined ? {} : { uid: message.uid }),
      ...(message.gid === undefined ? {} : { gid: message.gid }),
      cwd: message.cwd,
      env: message.env,
      detached: true,
      stdio: [stdin!, stdout!, stderr!],
    });
  } catch (error) {
    // Arguments spawn refuses before trying (a NUL byte in an argument, say).
    closeStreams();
    return send({ type: "failed", id: message.id, code: (error as NodeJS.ErrnoException).code ?? "", message: (error as Error).message });
  }
  // The pid exists as soon as spawn returns (libuv has waited for the exec): from here the
  // group is this spawner's to kill if the node goes, whatever the node has heard of it.
  const pid = child.pid;
  if (pid !== undefined) groups.set(message.id, pid);
  child.once("spawn", () => {
    // The command holds the sockets now; once it (and whatever it forks) closes them, the
    // node sees the end of its output.
    closeStreams();
    send({ type: "spawned", id: message.id, pid: child.pid! });
  });
  child.once("error", (error: NodeJS.ErrnoException) => {
    closeStreams();
    if (child.pid === undefined) send({ type: "failed", id: message.id, code: error.code ?? "", message: error.message });
  });
  child.once("exit", (code, signal) => {
    if (pid !== undefined) trackExit(message.id, pid);
    send({ type: "exit", id: message.id, code, signal });
  });
}

const server = createServer((socket) => {
  socket.on("error", () => undefined); // a dropped stream connection ends that one stream (its command sees EOF or EPIPE); the spawner lives on
  const silent = setTimeout(() => socket.destroy(), headerTimeoutMs);
  silent.unref();
  socket.once("close", () => clearTimeout(silent));
  // The header only: nothing else arrives on a connection before its command runs.
  const onReadable = (): void => {
    const header = socket.read(headerLength) as Buffer | null;
    if (header === null) return;
    socket.off("readable", onReadable);
    socket.pause();
    clearTimeout(silent);
    // At the end of input read() hands over what there is, however short.
    if (header.length !== headerLength) return void socket.destroy();
    const text = header.toString("latin1");
    const token = text.slice(0, tokenLength);
    const fd = Number(text.slice(tokenLength));
    if (!/^[0-9a-f]+$/.test(token) || ![0, 1, 2].includes(fd)) return void socket.destroy();
    const entry = pendingFor(token);
    if (entry.streams[fd] !== undefined) return void socket.destroy();
    entry.streams[fd] = socket;
    startWhenComplete(token, entry);
  };
  socket.on("readable", onReadable);
});

process.on("message", (message: SpawnMessage | CancelMessage | ReleaseMessage) => {
  if (message.type === "release") {
    groups.delete(message.id);
    return;
  }
  if (message.type === "cancel") {
    const entry = pending.get(message.token);
    if (entry === undefined) return;
    pending.delete(message.token);
    clearTimeout(entry.expiry);
    for (const socket of entry.streams) socket?.destroy();
    return;
  }
  if (message.type !== "spawn") return;
  const entry = pendingFor(message.token);
  entry.message = message;
  startWhenComplete(message.token, entry);
});
// The node is gone (killed, or it let go of this process). With kill-on-disconnect nothing
// it started may outlive it unaccounted for: every group started here and not released is
// killed, those the node never heard of included (the released ones are on disk, for the
// node's recovery). Without, commands keep running, as they would without a spawner.
const stop = (): never => {
  if (killOnDisconnect) killGroups();
  removeSocket();
  process.exit(0);
};
process.on("disconnect", stop);
// A message sent as the node dies fails on the closed channel (EPIPE) before "disconnect"
// is seen: that, too, means the node is gone.
process.on("error", stop);
// However this process ends (an uncaught error included), the groups go with it.
if (killOnDisconnect) process.on("exit", killGroups);
// A node that went away while this process was loading closed the channel before the
// listener above existed.
if (!process.connected) stop();
server.on("error", (error) => {
  console.error(`drce spawner: cannot listen on ${socketPath}: ${error.message}`);
  process.exit(1);
});
server.listen({ path: socketPath, backlog: 4096 }, () => send({ type: "ready" }));
