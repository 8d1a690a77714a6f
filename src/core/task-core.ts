import { open, type FileHandle } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve as resolvePath } from "node:path";
import { finished } from "node:stream/promises";
import { mkdir, realpath } from "node:fs/promises";
import { DrceError, ErrorCode } from "../domain/errors.js";
import { fromStoredSpec, specDigest, toStoredSpec } from "../domain/spec-json.js";
import { isFinalState, TaskState } from "../domain/states.js";
import { defaultTerminate, FileAction, taskSpec, taskStatus, type FileResult, type StreamName, type TaskSpec, type TaskStatus, type TerminateOptions } from "../domain/task.js";
import { allowedRootOf, validateSpec } from "../domain/validate.js";
import { releaseView, type KeptOutput, type OutputMode, type TaskView } from "../domain/view.js";
import type { ExecHandle, FileOps, RunAs, Runner, TaskUsage } from "../executor/runner.js";
import { handWorkDirTo } from "../executor/users.js";
import { isInside } from "../executor/local-files.js";
import { hasRunLimits, needsDiskUsage } from "../executor/limits.js";
import { OutputSpool } from "../store/spool.js";
import type { TaskStore } from "../store/task-store.js";
import type { OutputEvent, OutputStreamOptions, RunEvent, SubmitOutcome, TaskCore, TaskEvent } from "./api.js";
import { EventLog } from "./event-log.js";
import type { NodeOptions } from "./node-options.js";
import { Slots } from "./slots.js";
import { recoverTask } from "./recovery.js";
import { removeTail } from "../store/tail-ring.js";
import { createRetention, type RetentionReason } from "./retention.js";

/** A refusal of a start limit, as the limits checker reports it. */
export interface LimitRefusal {
  /** The protocol's limit name, e.g. "rram_free_min". */
  readonly name: string;
  /** Message naming the limit and the measured value. */
  readonly message: string;
}

/** Node-wide resource hooks the core consults; all optional. */
export interface ResourceHooks {
  /** Checks a task's start limits against the host; returns a refusal or undefined. */
  checkStart?(spec: TaskSpec, workDir: string): LimitRefusal | undefined;
  /** Checks a running task's usage against its *_usage_max limits. */
  checkRun?(spec: TaskSpec, usage: TaskUsage & { readonly diskBytes: number }): LimitRefusal | undefined;
  /** Bytes written in a directory (for disk_usage_max). */
  directoryBytes?(dir: string): Promise<number>;
  /** HOST_* figures for an extended check. */
  hostFields?(): Readonly<Record<string, number>>;
}

/**
 * Options of {@link createTaskCore}: the node options it reads (an absent inline bound or
 * retention bound is none), and the parts it is built from.
 */
export interface TaskCoreOptions
  extends Pick<NodeOptions, "maxConcurrent" | "maxQueue" | "maxOutputBytes" | "maxTaskMs" | "maxFileBytes" | "allowedDirs" | "allowEnv" | "eventHistory" | "sampleIntervalMs">,
    Partial<Pick<NodeOptions, "inlineOutputBytes" | "retainFinishedMs" | "retainMaxTasks">> {
  readonly store: TaskStore;
  /** Runner for local sessions. */
  readonly localRunner: Runner;
  /** Runner for SSH sessions; without it SSH tasks are refused. */
  readonly sshRunner?: (Runner & { filesFor?(session: TaskSpec["session"]): FileOps }) | undefined;
  /** Resource hooks. */
  readonly resources?: ResourceHooks | undefined;
  /** Decides the user a local task runs as, or throws a DrceError refusing it (see run-as.ts). */
  readonly runAs?: ((spec: TaskSpec) => RunAs | undefined) | undefined;
  /** Called after a retention sweep that deleted trees, with their number and the tasks they held. */
  readonly onRetentionSweep?: ((trees: number, tasks: number) => void) | undefined;
  /** Called with each event (logging, metrics, notifications). */
  readonly onEvent?: ((event: TaskEvent) => void) | undefined;
  /**
   * Called with an error no expected outcome explains (a fault of the node, not of the task);
   * the task ends with error 107 and a message that does not expose it.
   */
  readonly onInternalError?: ((taskId: string, error: unknown) => void) | undefined;
}

/** Why a running task is being stopped. */
interface StopReason {
  readonly state: TaskState;
  readonly errorCode: number;
  readonly message: string;
}

/** Live state of a task that has not reached its final state. */
interface Live {
  handle: ExecHandle | undefined;
  spools: Record<StreamName, OutputSpool> | undefined;
  stop: StopReason | undefined;
  /** Aborted when the task is terminated or expires: stops waiting for a slot. */
  readonly abort: AbortController;
  /** Resolves once the process has started (or will never start). */
  readonly started: Promise<void>;
  markStarted: () => void;
  /** The most recent usage sample. */
  usage: TaskUsage | undefined;
  /** True when an attached caller (RunTask) receives every byte, past the cap too. */
  readonly attached: boolean;
}

/** Why a task was deleted: a caller asked (rm, fetch with delete, cleanup), or the retention policy. */
export type DeletionReason = "request" | RetentionReason;

/** Tasks deleted since start, by reason (each task of a tree counts). */
export type DeletionCounts = Readonly<Record<DeletionReason, number>>;

/** A task known to the node. */
interface Entry {
  status: TaskStatus;
  readonly digest: string;
  /** The request; secrets are present only for tasks submitted since start. */
  readonly spec: TaskSpec;
  live: Live | undefined;
  /** Resolves when the task is final (its own command and its sync subtasks). */
  readonly done: Promise<void>;
  resolveDone: () => void;
  /** Resolves when the submission that made this entry is durable (or rejects). */
  accepted: Promise<void>;
  /** True once the task was handed to the scheduler (it will ask for a slot itself). */
  launched: boolean;
  /** The spools an attached caller reads, kept until it is done with them (past the task's live state). */
  attachedSpools: Record<StreamName, OutputSpool> | undefined;
}

let idCounter = 0;

/** Generates a numeric task id, unique on this node (legacy callers expect numbers). */
function generateId(taken: (id: string) => boolean): string {
  for (;;) {
    idCounter = (idCounter + 1) % 1000;
    const id = String(Date.now() * 1000 + idCounter);
    if (!taken(id)) return id;
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Largest output chunk a stream sends in one message: big enough that per-message work
 * (a file read, encoding, a write to the HTTP/2 stream) is small against the bytes, well
 * under the 4 MiB message limit gRPC clients default to.
 */
const outputChunkBytes = 1024 * 1024;

/**
 * Reads one output chunk from `offset` (up to `available`) into a buffer `bufferFor`
 * gives, read into directly: the message takes it as it is, no copy. Empty at the end of
 * the file.
 */
async function readChunk(handle: FileHandle, offset: number, available: number, bufferFor: (length: number) => Buffer): Promise<Buffer> {
  const length = Math.min(outputChunkBytes, available - offset);
  const data = bufferFor(length);
  const { bytesRead } = await handle.read(data, 0, length, offset);
  return data.subarray(0, bytesRead);
}

/** Chunks below this are read into buffers of their own (Node's small-buffer pool serves them). */
const ownBufferBelow = 64 * 1024;

/**
 * The read buffers of one output stream: two of a chunk each, used in turn. At most two
 * reads are outstanding (the chunk being sent and the one read ahead), one after the
 * other, so the buffer a read gets is never the other's; and a sent chunk's buffer comes
 * back once the consumer asks for the next event (see OutputChunk). Reusing them, rather
 * than allocating a MiB per message, keeps V8 from seeing a gigabyte of fresh external
 * memory per gigabyte sent, which is what drives its full garbage collections during a
 * transfer (BENCHMARKS.md has the figures). Only a consumer that asked to be lent them
 * gets them (see OutputStreamOptions); any other gets a buffer of its own per chunk, which
 * it may keep or forward.
 */
function chunkBuffers(lend: boolean): (length: number) => Buffer {
  const buffers: Buffer[] = [];
  let turn = 0;
  return (length) => {
    if (!lend || length < ownBufferBelow) return Buffer.allocUnsafe(length);
    const index = turn++ % 2;
    return (buffers[index] ??= Buffer.allocUnsafe(outputChunkBytes)).subarray(0, length);
  };
}

/** Resolves when the signal aborts (never rejects). */
const aborted = (signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true })));

/** The command summary shown in lists. */
function commandSummary(spec: TaskSpec): string {
  const text = spec.command !== "" ? spec.command : spec.argv.join(" ");
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

/**
 * Creates the task core: submission, scheduling, execution, subtasks, termination,
 * fetching, deletion and event streams over the store and the runners. Call `init()`
 * once before use: it loads the store and recovers tasks left by a dead node.
 */
export function createTaskCore(options: TaskCoreOptions): TaskCore & {
  init(): Promise<{ recovered: number; loaded: number }>;
  shutdown(graceMs: number): Promise<void>;
  readonly events: EventLog;
  readonly slots: Slots;
  /** Number of tasks the node holds. */
  size(): number;
  /** Tasks deleted since start, by reason. */
  deletions(): DeletionCounts;
  /** Runs the retention sweep now; resolves to the number of trees it deleted. */
  sweepRetention(): Promise<number>;
} {
  const { store } = options;
  const inlineBytes = options.inlineOutputBytes ?? 1024 * 1024;
  const entries = new Map<string, Entry>();
  const aliases = new Map<string, string>();
  const events = new EventLog(options.eventHistory);
  const slots = new Slots(options.maxConcurrent, options.maxQueue);
  let closing = false;
  let initialized = false;
  const deletions: Record<DeletionReason, number> = { request: 0, age: 0, count: 0 };
  // Callers still receiving a tree's result (a sync reply, a run, a follower), by root id:
  // the retention sweep leaves such a tree until they are done.
  const holds = new Map<string, number>();
  let sweptTasks = 0;
  const retention = createRetention({
    retainFinishedMs: options.retainFinishedMs ?? 0,
    maxTasks: options.retainMaxTasks ?? 0,
    size() {
      return entries.size;
    },
    remove: async (rootId, reason) => {
      const entry = entries.get(rootId);
      if (entry === undefined) return true;
      if (holds.has(rootId) || !treeFinal(entry)) return false;
      sweptTasks += await removeTree(entry, reason);
      return true;
    },
    onError: (rootId, error) => options.onInternalError?.(rootId, error),
    onSwept: (trees) => {
      const tasks = sweptTasks;
      sweptTasks = 0;
      options.onRetentionSweep?.(trees, tasks);
    },
  });

  const timeOf = (status: TaskStatus): number =>
    status.startedAt === 0 ? 0 : Math.max(0, (status.finishedAt === 0 ? Date.now() : status.finishedAt) - status.startedAt);

  const publish = (status: TaskStatus): void => {
    const event = events.publish(status, timeOf(status));
    options.onEvent?.(event);
    if (initialized && isFinalState(status.state)) noteFinal(status.id);
  };

  /** The root of a task's tree (a subtask whose parent was deleted is a root of its own). */
  const rootOf = (entry: Entry): Entry => {
    let current = entry;
    for (;;) {
      const parent = current.status.parentId === "" ? undefined : entries.get(current.status.parentId);
      if (parent === undefined) return current;
      current = parent;
    }
  };

  /** Queues a task's tree for retention once all of it is final. */
  const noteFinal = (id: string): void => {
    const entry = entries.get(id);
    if (entry === undefined) return;
    const root = rootOf(entry);
    if (treeFinal(root)) retention.finished(root.status.id, Date.now());
  };

  /** Keeps a task's tree from the retention sweep until the returned function is called. */
  const hold = (entry: Entry): (() => void) => {
    const rootId = rootOf(entry).status.id;
    holds.set(rootId, (holds.get(rootId) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (holds.get(rootId) ?? 1) - 1;
      if (left > 0) holds.set(rootId, left);
      else {
        holds.delete(rootId);
        retention.poke();
      }
    };
  };

  /** Changes a task's status in memory, persists it durably, and publishes the change. */
  const update = async (entry: Entry, changes: Partial<TaskStatus>, point?: string): Promise<void> => {
    const stateChanged = changes.state !== undefined && changes.state !== entry.status.state;
    entry.status = { ...entry.status, ...changes };
    await store.saveStatus(entry.status, point);
    if (stateChanged) publish(entry.status);
  };

  const resolveRef = (ref: string): Entry => {
    const entry = entries.get(ref) ?? entries.get(aliases.get(ref) ?? "");
    if (entry === undefined) throw new DrceError("not-found", `no task ${JSON.stringify(ref)}`, { legacyCode: ErrorCode.None });
    return entry;
  };

  const filesOf = (spec: TaskSpec): FileOps => {
    if (spec.session.type === "ssh") {
      const ssh = options.sshRunner;
      if (ssh === undefined) throw new DrceError("invalid", "SSH sessions are not enabled on this node", { legacyCode: ErrorCode.NodeModeNotSupported });
      return ssh.filesFor?.(spec.session) ?? ssh.files;
    }
    return options.localRunner.files;
  };

  /**
   * Where a file of a task lives: its name relative to the work dir, or, for an absolute name
   * of a local task inside an `--allow-dir` directory, relative to that directory (the file
   * operations then confine it there, symlinks included, as they confine the work dir).
   */
  const fileLocation = (spec: TaskSpec, workDir: string, name: string): { dir: string; name: string } => {
    const root = spec.session.type === "local" ? allowedRootOf(name, options.allowedDirs) : undefined;
    if (root === undefined) return { dir: workDir, name };
    const dir = resolvePath(root);
    return { dir, name: relative(dir, resolvePath(name)) };
  };

  /** Resolves and checks a task's working directory. */
  const resolveWorkDir = async (spec: TaskSpec): Promise<string> => {
    if (spec.session.type === "ssh") {
      return spec.workDir !== "" ? spec.workDir : `.drce/tasks/${spec.id}`;
    }
    const own = store.workDir(spec.id);
    if (spec.workDir === "") return own;
    const wanted = isAbsolute(spec.workDir) ? resolvePath(spec.workDir) : resolvePath(own, spec.workDir);
    const roots = [own, ...options.allowedDirs];
    // Lexically inside an allowed root before anything is created; symlinks are checked after.
    if (!roots.some((root) => isInside(resolvePath(root), wanted))) {
      throw new DrceError("invalid", `home_dir ${JSON.stringify(spec.workDir)} is outside the directories this node allows`, {
        legacyCode: ErrorCode.SetHomeDir,
      });
    }
    // A symlink on the way may point out of the roots: check the deepest directory that
    // exists already, by its real path, before creating anything below it.
    let existing = wanted;
    while (!(await realpath(existing).then(() => true, () => false))) existing = dirname(existing);
    const realExisting = await realpath(existing);
    const realRoots = await Promise.all(roots.map((root) => realpath(root).catch(() => undefined)));
    if (!realRoots.some((root) => root !== undefined && isInside(root, realExisting))) {
      throw new DrceError("invalid", `home_dir ${JSON.stringify(spec.workDir)} is outside the directories this node allows`, {
        legacyCode: ErrorCode.SetHomeDir,
      });
    }
    let real: string;
    try {
      await mkdir(wanted, { recursive: true, mode: 0o700 }).catch(() => undefined);
      real = await realpath(wanted);
    } catch {
      throw new DrceError("invalid", `home_dir ${JSON.stringify(spec.workDir)} does not exist`, { legacyCode: ErrorCode.SetHomeDir });
    }
    for (const root of roots) {
      const realRoot = await realpath(root).catch(() => undefined);
      if (realRoot !== undefined && isInside(realRoot, real)) return real;
    }
    throw new DrceError("invalid", `home_dir ${JSON.stringify(spec.workDir)} is outside the directories this node allows`, {
      legacyCode: ErrorCode.SetHomeDir,
    });
  };

  // ---- views -------------------------------------------------------------

  const viewOf = async (entry: Entry, output: OutputMode, extended: boolean): Promise<TaskView> => {
    const status = entry.status;
    const subtasks = await Promise.all(
      status.subtaskIds.map((id) => entries.get(id)).filter((e): e is Entry => e !== undefined).map((e) => viewOf(e, output, extended)),
    );
    const view: { -readonly [K in keyof TaskView]: TaskView[K] } = { status, timeMs: timeOf(status), subtasks };
    if (output !== "none") {
      const live = entry.live?.spools;
      for (const stream of ["stdout", "stderr"] as const) {
        // A running task's spool may be past its head; what is readable in the file is what we have.
        const available = live?.[stream].available;
        let keptSize: number;
        if (output === "whole") {
          const kept = await openKept(status.id, stream, available);
          view[stream === "stdout" ? "stdoutFile" : "stderrFile"] = kept;
          keptSize = kept.size;
        } else {
          const { data, size } = await store.readOutputHead(status.id, stream, inlineBytes);
          keptSize = available === undefined ? size : Math.min(size, available);
          view[stream] = data.subarray(0, Math.min(data.length, keptSize));
          view[stream === "stdout" ? "stdoutMore" : "stderrMore"] = keptSize > view[stream].length;
        }
        // A truncated stream's kept copy is exactly the cap: its head is the first half, rounded up.
        const total = stream === "stdout" ? status.stdoutSize : status.stderrSize;
        const truncated = stream === "stdout" ? status.stdoutTruncated : status.stderrTruncated;
        if (truncated && total > keptSize && (live === undefined || live[stream].complete)) {
          view[stream === "stdout" ? "stdoutGap" : "stderrGap"] = { offset: Math.ceil(keptSize / 2), bytes: total - keptSize };
        }
      }
      view.files = await readResultFiles(status);
    }
    if (extended) view.fields = fieldsOf(entry);
    return view;
  };

  /**
   * Opens a task's kept output stream for reading, up to `available` bytes when the task is
   * still writing it. A stream that wrote nothing has no file and reads as empty.
   */
  const openKept = async (id: string, stream: StreamName, available: number | undefined): Promise<KeptOutput> => {
    let handle: FileHandle;
    try {
      handle = await open(store.outputPath(id, stream), "r");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { size: 0, read: () => Promise.resolve(new Uint8Array(0)), close: () => Promise.resolve() };
      throw new DrceError("unavailable", `storage error while reading ${stream}`, { cause: error, legacyCode: ErrorCode.ReadDataFile });
    }
    const fileSize = (await handle.stat()).size;
    const size = available === undefined ? fileSize : Math.min(available, fileSize);
    let closed: Promise<void> | undefined;
    return {
      size,
      async read(position, length) {
        const data = Buffer.allocUnsafe(Math.max(0, Math.min(length, size - position)));
        let filled = 0;
        while (filled < data.length) {
          const { bytesRead } = await handle.read(data, filled, data.length - filled, position + filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        return data.subarray(0, filled);
      },
      close: () => (closed ??= handle.close()),
    };
  };

  const readResultFiles = async (status: TaskStatus): Promise<FileResult[]> => {
    const results: FileResult[] = [];
    for (const [index, file] of status.files.entries()) {
      try {
        const handle = await open(store.filePath(status.id, index), "r");
        try {
          results.push({ name: file.name, action: file.action, data: await handle.readFile() });
        } finally {
          await handle.close();
        }
      } catch {
        results.push({ name: file.name, action: file.action, data: new Uint8Array(0) });
      }
    }
    return results;
  };

  const fieldsOf = (entry: Entry): Record<string, number> => {
    const usage = entry.live?.usage;
    const peak = entry.status.usage;
    return {
      TASK_CPU: usage?.cpuPercent ?? peak["TASK_CPU"] ?? 0,
      TASK_VRAM: usage?.vramBytes ?? peak["TASK_VRAM"] ?? 0,
      TASK_RRAM: usage?.rramBytes ?? peak["TASK_RRAM"] ?? 0,
      TASK_THREADS: usage?.threads ?? peak["TASK_THREADS"] ?? 0,
      HOST_CPU: 0,
      HOST_IOWAIT: 0,
      HOST_VRAM: 0,
      HOST_RRAM: 0,
      HOST_DISK: 0,
      HOST_PROCESSES: 0,
      HOST_THREADS: 0,
      ...options.resources?.hostFields?.(),
    };
  };

  // ---- execution -----------------------------------------------------------

  /** Marks a task that never started as final with the given reason. */
  const refuse = async (entry: Entry, reason: StopReason): Promise<void> => {
    await update(entry, { state: reason.state, errorCode: reason.errorCode, errorMessage: reason.message, finishedAt: Date.now() }, "final");
  };

  /** Stops a live task for a reason: aborts its wait for a slot, or terminates its process. */
  const stopLive = (entry: Entry, reason: StopReason, terminate: TerminateOptions): Promise<void> => {
    const live = entry.live;
    if (live === undefined) return Promise.resolve();
    live.stop ??= reason;
    live.abort.abort();
    return live.handle?.terminate(terminate) ?? Promise.resolve();
  };

  /** Stops every live task of a subtree (used by terminate and by the tree deadline). */
  const stopTree = async (entry: Entry, reason: StopReason, subReason: StopReason, terminate: TerminateOptions): Promise<void> => {
    const jobs: Promise<void>[] = [stopLive(entry, reason, terminate)];
    for (const id of entry.status.subtaskIds) {
      const sub = entries.get(id);
      if (sub !== undefined && !isFinalState(sub.status.state)) jobs.push(stopTree(sub, subReason, subReason, terminate));
    }
    await Promise.all(jobs);
  };

  const expiryTerminate: TerminateOptions = { alg: 1, delayMs: 1000, repeat: 3, signal: 9, cleanup: false };

  /**
   * Runs one task: waits for a slot, checks limits, handles files, runs the command,
   * then its subtasks in order. Resolves when the task is final.
   */
  const runTask = async (entry: Entry, treeDeadline: number): Promise<void> => {
    const spec = entry.spec;
    const live = entry.live!;
    let slotHeld = false;
    const releaseSlot = (): void => {
      if (!slotHeld) return;
      slotHeld = false;
      slots.release();
    };
    try {
      // Wait for a slot; a ttl ends the wait.
      if (!slots.free) await update(entry, { state: TaskState.Queued });
      const ttlTimer = spec.ttlMs > 0 ? setTimeout(() => live.abort.abort(), spec.ttlMs) : undefined;
      // A terminate that came while the queued status was written has already aborted the signal.
      slotHeld = await slots.acquire(live.abort.signal);
      clearTimeout(ttlTimer);
      if (!slotHeld) {
        live.markStarted();
        await refuse(
          entry,
          live.stop ?? { state: TaskState.NotSet, errorCode: ErrorCode.CreateTask, message: `ttl of ${spec.ttlMs} ms passed while the task was queued` },
        );
        await cancelSubtasks(entry, live.stop ?? { state: TaskState.Terminated, errorCode: ErrorCode.Canceled, message: "parent task did not run" });
        return;
      }
      if (live.stop !== undefined) {
        live.markStarted();
        await refuse(entry, live.stop);
        await cancelSubtasks(entry, live.stop);
        return;
      }
      await runCommand(entry, treeDeadline, releaseSlot);
    } catch (error) {
      live.markStarted();
      if (!(error instanceof DrceError)) options.onInternalError?.(entry.status.id, error);
      const reason: StopReason =
        error instanceof DrceError
          ? { state: TaskState.NotSet, errorCode: error.legacyCode, message: error.message }
          : { state: TaskState.NotSet, errorCode: ErrorCode.ExecuteTask, message: "internal error while running the task" };
      if (!isFinalState(entry.status.state)) {
        await refuse(entry, reason).catch(() => undefined); // a refusal that cannot be stored stays in memory; recovery reports the task crashed
      } else if (error instanceof DrceError && error.kind === "unavailable") {
        // The final state is known but could not be stored, the reserve spent: it is reported
        // and published all the same, so that watchers see the end.
        options.onInternalError?.(entry.status.id, error);
        publish(entry.status);
      }
      await cancelSubtasks(entry, { state: TaskState.Terminated, errorCode: ErrorCode.Canceled, message: "parent task did not run" }).catch(() => undefined);
      return;
    } finally {
      releaseSlot();
    }
  };

  /** Marks subtasks that will never start as final. */
  const cancelSubtasks = async (entry: Entry, reason: StopReason): Promise<void> => {
    for (const id of entry.status.subtaskIds) {
      const sub = entries.get(id);
      // A subtask already started runs on (or is stopped by stopTree); only the rest are cancelled.
      if (sub === undefined || sub.launched || isFinalState(sub.status.state)) continue;
      sub.live?.markStarted();
      slots.unreserve(1); // it will never ask for a slot
      await refuse(sub, reason);
      await cancelSubtasks(sub, reason);
      finalize(sub);
    }
  };

  const finalize = (entry: Entry): void => {
    entry.live = undefined;
    entry.resolveDone();
  };

  const runCommand = async (entry: Entry, treeDeadline: number, releaseSlot: () => void): Promise<void> => {
    const spec = entry.spec;
    const live = entry.live!;
    const runner = spec.session.type === "ssh" ? options.sshRunner : options.localRunner;
    if (runner === undefined) throw new DrceError("invalid", "SSH sessions are not enabled on this node", { legacyCode: ErrorCode.NodeModeNotSupported });
    const files = filesOf(spec);
    const workDir = await files.prepareWorkDir(await resolveWorkDir(spec));

    const refusal = options.resources?.checkStart?.(spec, workDir);
    if (refusal !== undefined) throw new DrceError("exhausted", refusal.message, { legacyCode: ErrorCode.ResourceLimits });

    for (const file of spec.files) {
      const at = fileLocation(spec, workDir, file.name);
      if (file.action & FileAction.DeleteBefore) await files.remove(at.dir, at.name);
      if (file.action & FileAction.CreateBefore) await files.write(at.dir, at.name, file.data);
    }

    const spools = {
      stdout: new OutputSpool(store.outputPath(spec.id, "stdout"), options.maxOutputBytes, store.space),
      stderr: new OutputSpool(store.outputPath(spec.id, "stderr"), options.maxOutputBytes, store.space),
    };
    live.spools = spools;
    if (live.attached) {
      spools.stdout.attachLive();
      spools.stderr.attachLive();
      entry.attachedSpools = spools;
    }

    const runAs = spec.session.type === "local" ? options.runAs?.(spec) : undefined;
    if (runAs !== undefined && workDir === (await realpath(store.workDir(spec.id)).catch(() => ""))) {
      await handWorkDirTo(runAs, workDir, [store.taskDir(spec.id), store.root, dirname(store.root)]);
    }
    const handle = await runner.start({
      spec,
      runAs,
      workDir,
      stdout: spools.stdout,
      stderr: spools.stderr,
      onSpawn: async (info) => {
        // The first sample, taken at the spawn, is in place before the task shows as running.
        if (info.usage !== undefined) recordUsage(entry, info.usage);
        await update(entry, { state: TaskState.InProgress, pid: info.pid, pgid: info.pgid, procStartTicks: info.procStartTicks, startedAt: Date.now() }, "spawned");
      },
    });
    live.handle = handle;
    live.markStarted();
    // A stop that arrived while the process was starting applies now.
    if (live.stop !== undefined) void handle.terminate(defaultTerminate);

    // Time limits: the task's own (timeout, time_max, the node's ceiling) and its tree's.
    const started = entry.status.startedAt || Date.now();
    const limits = [spec.timeoutSeconds * 1000, spec.timeMaxMs, options.maxTaskMs].filter((v) => v > 0);
    const ownDeadline = limits.length > 0 ? started + Math.min(...limits) : Number.POSITIVE_INFINITY;
    const timers: NodeJS.Timeout[] = [];
    if (Number.isFinite(ownDeadline)) {
      timers.push(
        setTimeout(() => {
          void stopLive(entry, { state: TaskState.Expired, errorCode: ErrorCode.TerminatedExpired, message: "time limit passed; the task was terminated" }, expiryTerminate);
        }, Math.max(0, ownDeadline - Date.now())),
      );
    }
    const sampler = startSampling(entry, handle, workDir);
    let outcome;
    try {
      outcome = await handle.done;
    } finally {
      for (const timer of timers) clearTimeout(timer);
      clearInterval(sampler);
    }
    await Promise.all(
      [spools.stdout, spools.stderr].map(async (spool) => {
        if (!spool.writableEnded) spool.end();
        await finished(spool).catch(() => undefined);
        await spool.finish();
      }),
    );

    // Files after the command.
    let fileError: DrceError | undefined;
    const kept: { name: string; action: number }[] = [];
    for (const file of spec.files) {
      try {
        const at = fileLocation(spec, workDir, file.name);
        if (file.action & FileAction.ReadAfter) {
          const data = await files.read(at.dir, at.name, options.maxFileBytes);
          const index = kept.length;
          await store.writeResultFile(spec.id, index, data);
          kept.push({ name: file.name, action: file.action >>> 0 });
        }
        if (file.action & FileAction.DeleteAfter) await files.remove(at.dir, at.name);
      } catch (error) {
        const code = file.action & FileAction.ReadAfter ? ErrorCode.FileRead : ErrorCode.FileDeleteAfter;
        fileError ??= error instanceof DrceError ? new DrceError("invalid", error.message, { legacyCode: code }) : new DrceError("invalid", `file ${file.name}: failed`, { legacyCode: code });
      }
    }

    const stop = live.stop;
    // A disk that filled up (or failed) under the output: the result says so.
    const lost = (["stdout", "stderr"] as const).find((stream) => spools[stream].storageError !== undefined);
    if (lost !== undefined) {
      fileError ??= new DrceError("unavailable", `storage error while writing ${lost} (${spools[lost].storageError}); the output is incomplete`, { legacyCode: ErrorCode.InternalFo });
    }
    const base: Partial<TaskStatus> = {
      stdoutSize: spools.stdout.total,
      stderrSize: spools.stderr.total,
      stdoutTruncated: spools.stdout.truncated,
      stderrTruncated: spools.stderr.truncated,
      files: kept,
      usage: entry.status.usage,
    };
    let finalStatus: Partial<TaskStatus>;
    if (outcome.kind === "failed") {
      finalStatus = { ...base, state: TaskState.NotSet, errorCode: outcome.errorCode, errorMessage: outcome.message };
    } else {
      finalStatus = {
        ...base,
        state: stop?.state ?? TaskState.Finished,
        errorCode: stop?.errorCode ?? fileError?.legacyCode ?? ErrorCode.None,
        errorMessage: stop?.message ?? fileError?.message ?? "",
        exitStatus: outcome.exitStatus,
        signal: outcome.signal,
        escapedPids: outcome.escapedPids,
      };
    }
    // A parent waiting for its subtasks runs nothing: it gives its slot up, or with every slot
    // held by such parents (max-concurrent 1 and one sync subtask) no subtask could ever start.
    releaseSlot();
    // The task stays "in progress" until its sync subtasks are done; its own figures are kept now.
    entry.status = { ...entry.status, ...finalStatus, state: entry.status.state };
    live.handle = undefined;

    // Subtasks, in order: a sync one finishes before the next starts; an async one is
    // started and the next goes on. A parent that was stopped runs none of them.
    if (stop !== undefined || outcome.kind === "failed") {
      await cancelSubtasks(entry, { state: TaskState.Terminated, errorCode: ErrorCode.Canceled, message: "parent task was stopped" });
    } else {
      const subDeadline = Math.min(treeDeadline, spec.timeMaxMs > 0 ? started + spec.timeMaxMs : Number.POSITIVE_INFINITY);
      for (const id of entry.status.subtaskIds) {
        const sub = entries.get(id);
        if (sub === undefined) continue;
        if (entry.live?.stop !== undefined) {
          await cancelSubtasks(entry, { state: TaskState.Terminated, errorCode: ErrorCode.Canceled, message: "parent task was stopped" });
          break;
        }
        const run = startTree(sub, subDeadline);
        if (sub.spec.mode === 1) await run;
      }
    }
    await update(entry, { ...finalStatus, usage: entry.status.usage, finishedAt: Date.now() }, "final");
  };

  /** Keeps a usage sample of a live task: the current figures, and the peaks in its status. */
  const recordUsage = (entry: Entry, usage: TaskUsage): void => {
    if (entry.live === undefined) return;
    entry.live.usage = usage;
    const peak = entry.status.usage;
    entry.status = {
      ...entry.status,
      usage: {
        TASK_CPU: Math.max(peak["TASK_CPU"] ?? 0, usage.cpuPercent),
        TASK_VRAM: Math.max(peak["TASK_VRAM"] ?? 0, usage.vramBytes),
        TASK_RRAM: Math.max(peak["TASK_RRAM"] ?? 0, usage.rramBytes),
        TASK_THREADS: Math.max(peak["TASK_THREADS"] ?? 0, usage.threads),
      },
    };
  };

  /** Samples a running task's usage and enforces its *_usage_max limits. */
  const startSampling = (entry: Entry, handle: ExecHandle, workDir: string): NodeJS.Timeout => {
    const timer = setInterval(() => {
      void (async () => {
        const usage = await handle.sampleUsage?.().catch(() => undefined); // a failed sample is skipped; the next one comes an interval later
        if (usage === undefined || entry.live === undefined) return;
        recordUsage(entry, usage);
        const hooks = options.resources;
        if (hooks?.checkRun !== undefined && hasRunLimits(entry.spec.limits) && entry.live.stop === undefined) {
          // A walk of the work dir on every sample is paid only by tasks with a disk limit.
          const diskBytes = needsDiskUsage(entry.spec.limits) ? ((await hooks.directoryBytes?.(workDir).catch(() => 0)) ?? 0) : 0;
          const refusal = hooks.checkRun(entry.spec, { ...usage, diskBytes });
          // Once stopping, later samples leave the termination under way alone.
          if (refusal !== undefined && entry.live?.stop === undefined) {
            void stopLive(entry, { state: TaskState.Terminated, errorCode: ErrorCode.ResourceLimits, message: refusal.message }, expiryTerminate);
          }
        }
      })();
    }, options.sampleIntervalMs);
    timer.unref();
    return timer;
  };

  /**
   * Starts a task and arms its tree deadline (the parent's time_max bounds the whole tree;
   * subtasks still running when it passes are stopped with error 117).
   */
  const startTree = (entry: Entry, treeDeadline: number): Promise<void> => {
    entry.launched = true;
    let deadlineTimer: NodeJS.Timeout | undefined;
    if (Number.isFinite(treeDeadline)) {
      deadlineTimer = setTimeout(
        () => {
          void stopTree(
            entry,
            { state: TaskState.Expired, errorCode: ErrorCode.TerminatedSubtaskExpired, message: "parent task's time_max passed; the subtask was terminated" },
            { state: TaskState.Expired, errorCode: ErrorCode.TerminatedSubtaskExpired, message: "parent task's time_max passed; the subtask was terminated" },
            expiryTerminate,
          );
        },
        Math.max(0, treeDeadline - Date.now()),
      );
    }
    return runTask(entry, treeDeadline).finally(() => {
      clearTimeout(deadlineTimer);
      finalize(entry);
      if (entry.spec.cleanup && entry.status.parentId === "" && entry.spec.mode === 2) {
        // Async tasks with cleanup are deleted when their result is fetched; see fetch().
      }
    });
  };

  // ---- submission ------------------------------------------------------------

  const makeEntry = (spec: TaskSpec, parentId: string, digest: string, attached: boolean): Entry => {
    const done = deferred();
    const started = deferred();
    const now = Date.now();
    const status = taskStatus({
      id: spec.id,
      alias: spec.alias,
      parentId,
      subtaskIds: spec.subtasks.map((s) => s.id),
      mode: spec.mode,
      state: parentId === "" ? TaskState.New : TaskState.Queued,
      submittedAt: now,
      command: commandSummary(spec),
      inputSize: spec.input.length,
    });
    return {
      status,
      digest,
      spec,
      live: {
        handle: undefined,
        spools: undefined,
        stop: undefined,
        abort: new AbortController(),
        started: started.promise,
        markStarted: started.resolve,
        usage: undefined,
        attached,
      },
      done: done.promise,
      resolveDone: done.resolve,
      accepted: Promise.resolve(),
      launched: false,
      attachedSpools: undefined,
    };
  };

  /** Gives ids to tasks of a tree that have none. */
  const withIds = (spec: TaskSpec, reserved: Set<string>): TaskSpec => {
    const id = spec.id !== "" ? spec.id : generateId((candidate) => entries.has(candidate) || reserved.has(candidate));
    reserved.add(id);
    return { ...spec, id, subtasks: spec.subtasks.map((sub) => withIds(sub, reserved)) };
  };

  const flatten = (spec: TaskSpec, parentId: string, out: { spec: TaskSpec; parentId: string }[] = []): { spec: TaskSpec; parentId: string }[] => {
    out.push({ spec, parentId });
    for (const sub of spec.subtasks) flatten(sub, spec.id, out);
    return out;
  };

  /** Sets a task tree; `attached` marks the root's caller as one that receives every byte (RunTask). */
  const submitWith = async (input: TaskSpec, signal: AbortSignal | undefined, output: OutputMode, attached: boolean): Promise<SubmitOutcome> => {
    if (closing) throw new DrceError("unavailable", "the node is shutting down");
    validateSpec(input, { allowEnv: options.allowEnv, allowedDirs: options.allowedDirs });
    const spec = withIds(input, new Set());
    // A user the task may not run as is refused before anything is stored.
    for (const { spec: task } of flatten(spec, "")) options.runAs?.(task);
    const digest = specDigest(spec);

    // Everything from here to the reservation is synchronous, so concurrent identical
    // submissions see each other: exactly one of them creates the task.
    const existing = entries.get(spec.id);
    if (existing !== undefined) {
      if (existing.digest !== digest || existing.status.parentId !== "") {
        throw new DrceError("exists", `task id ${spec.id} is already used by a different request`, { legacyCode: ErrorCode.CreateTask });
      }
      await existing.accepted;
      const release = hold(existing);
      try {
        if (spec.mode === 1) await waitDone(existing, signal);
        return { view: await viewOf(existing, spec.mode === 1 ? output : "none", false), existing: true };
      } finally {
        release();
      }
    }
    // A full disk takes no new work (the room left keeps running tasks' final states);
    // a resubmission of a task the node has is answered above.
    if (store.space.recheck()) {
      throw new DrceError("unavailable", "storage error: the disk is full (ENOSPC); the node takes no new tasks until space is freed", { legacyCode: ErrorCode.InternalFo });
    }
    const tree = flatten(spec, "");
    for (const { spec: task } of tree) {
      if (entries.has(task.id)) throw new DrceError("exists", `task id ${task.id} is already used`, { legacyCode: ErrorCode.CreateTask });
      if (task.alias !== "") {
        const holder = entries.get(aliases.get(task.alias) ?? "");
        if (holder !== undefined && !isFinalState(holder.status.state)) {
          throw new DrceError("exists", `alias ${task.alias} is held by unfinished task ${holder.status.id}`, { legacyCode: ErrorCode.CreateTask });
        }
      }
    }
    slots.reserve(tree.length);
    const made = tree.map(({ spec: task, parentId }) => makeEntry(task, parentId, parentId === "" ? digest : specDigest(task), attached && parentId === ""));
    // Every task is on disk before it runs, sync or async, so that a node that dies (or a host
    // that loses power) never leaves a process it cannot account for.
    const accepted = Promise.all(made.map((entry) => store.create({ digest: entry.digest, spec: toStoredSpec(entry.spec) }, entry.status))).then(() => undefined);
    for (const entry of made) {
      entry.accepted = accepted;
      entries.set(entry.status.id, entry);
      if (entry.status.alias !== "") aliases.set(entry.status.alias, entry.status.id);
    }
    try {
      await accepted;
    } catch (error) {
      slots.unreserve(made.length);
      for (const entry of made) {
        entries.delete(entry.status.id);
        if (aliases.get(entry.status.alias) === entry.status.id) aliases.delete(entry.status.alias);
      }
      // A refused submission leaves nothing on disk by the time the caller hears of it.
      await Promise.all(made.map((entry) => store.remove(entry.status.id).catch(() => undefined)));
      throw error;
    }
    const root = made[0]!;
    for (const entry of made) publish(entry.status);
    // The node may now hold more tasks than its retention bound: older finished ones go.
    retention.poke();
    // The sync caller's result is read before the retention sweep may take the tree.
    const release = spec.mode === 2 ? undefined : hold(root);
    // The root's own time limits end it with 116; its time_max reaches its subtasks (117)
    // through the deadline runCommand hands them.
    void startTree(root, Number.POSITIVE_INFINITY);
    if (release === undefined) return { view: await viewOf(root, "none", false), existing: false };
    try {
      await waitDone(root, signal);
      const view = await viewOf(root, output, false);
      if (spec.cleanup) await cleanupDelivered(root, view);
      return { view, existing: false };
    } finally {
      release();
    }
  };

  const waitDone = async (entry: Entry, signal?: AbortSignal): Promise<void> => {
    if (signal === undefined) return entry.done;
    if (signal.aborted) throw new DrceError("unavailable", "the call was cancelled");
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(new DrceError("unavailable", "the call was cancelled"));
      signal.addEventListener("abort", onAbort, { once: true });
      void entry.done.then(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  };

  // ---- other calls -----------------------------------------------------------

  /** Deletes a task and its subtasks, each with a state 9 event; resolves to the number deleted. */
  const removeTree = async (entry: Entry, reason: DeletionReason = "request"): Promise<number> => {
    let removed = 0;
    for (const id of entry.status.subtaskIds) {
      const sub = entries.get(id);
      if (sub !== undefined) removed += await removeTree(sub, reason);
    }
    entries.delete(entry.status.id);
    retention.forget(entry.status.id);
    if (aliases.get(entry.status.alias) === entry.status.id) aliases.delete(entry.status.alias);
    await store.remove(entry.status.id);
    deletions[reason]++;
    publish({ ...entry.status, state: TaskState.Deleted });
    return removed + 1;
  };

  /** Resolves once the task and every subtask below it (async ones too) are final. */
  const treeDone = async (entry: Entry): Promise<void> => {
    await entry.done;
    const subs = entry.status.subtaskIds.map((id) => entries.get(id)).filter((sub): sub is Entry => sub !== undefined);
    await Promise.all(subs.map(treeDone));
  };

  /**
   * Applies a cleanup task's `cleanup` once its result was delivered in `view`. A tree that is
   * final goes at once. Otherwise (async subtasks still queued or running) nothing goes now:
   * once the whole tree is final, the tasks whose final results `view` delivered go, and the
   * subtasks that were unfinished in it stay, checkable and fetchable by id, until a fetch
   * or a delete takes them, like any task whose result nobody has had yet.
   */
  const cleanupDelivered = async (root: Entry, view: TaskView): Promise<void> => {
    if (treeFinal(root)) {
      await removeTree(root).catch(() => undefined); // a task left on disk is still deleted by a later delete
      return;
    }
    const delivered: string[] = [];
    const collect = (v: TaskView): void => {
      if (isFinalState(v.status.state)) delivered.push(v.status.id);
      for (const sub of v.subtasks) collect(sub);
    };
    collect(view);
    void treeDone(root)
      .then(() => removeEntries(delivered))
      .catch((error: unknown) => options.onInternalError?.(root.status.id, error));
  };

  /** Removes the final tasks among `ids`, each on its own (their subtasks are not followed). */
  const removeEntries = async (ids: readonly string[]): Promise<void> => {
    for (const id of ids) {
      const entry = entries.get(id);
      if (entry === undefined || !isFinalState(entry.status.state)) continue;
      entries.delete(id);
      retention.forget(id);
      if (aliases.get(entry.status.alias) === id) aliases.delete(entry.status.alias);
      await store.remove(id);
      deletions.request++;
      publish({ ...entry.status, state: TaskState.Deleted });
    }
  };

  const treeFinal = (entry: Entry): boolean =>
    isFinalState(entry.status.state) && entry.status.subtaskIds.every((id) => {
      const sub = entries.get(id);
      return sub === undefined || treeFinal(sub);
    });

  const terminate = async (ref: string, request: TerminateOptions): Promise<TaskView> => {
    const entry = resolveRef(ref);
    if (isFinalState(entry.status.state) || entry.live === undefined) {
      throw new DrceError("precondition", `task ${entry.status.id} is not running (state ${entry.status.state})`, { legacyCode: ErrorCode.Terminate });
    }
    const reason = { state: TaskState.Terminated, errorCode: ErrorCode.None, message: "" } as const;
    const subReason = { state: TaskState.Terminated, errorCode: ErrorCode.Canceled, message: "parent task was terminated" } as const;
    await stopTree(entry, reason, subReason, request);
    // The terminate algorithm has run; the task turns final once its output is flushed.
    await Promise.race([entry.done, sleep(Math.max(2000, request.delayMs * (request.repeat + 1)))]);
    const view = await viewOf(entry, "none", false);
    if (request.cleanup && treeFinal(entry)) await removeTree(entry);
    return view;
  };

  const fetch = async (ref: string, remove: boolean, output: OutputMode = "inline"): Promise<TaskView> => {
    const entry = resolveRef(ref);
    // Its files are read across several awaits; the retention sweep waits for them.
    const release = hold(entry);
    try {
      const view = await viewOf(entry, output, false);
      if (!treeFinal(entry)) {
        return { ...view, status: { ...view.status, errorCode: ErrorCode.GetDataStillRunning, errorMessage: "the task is still running" } };
      }
      try {
        // Kept output opened for the caller stays readable after the removal (the files are open).
        if (remove || entry.spec.cleanup) await removeTree(entry);
      } catch (error) {
        await releaseView(view);
        throw error;
      }
      return view;
    } finally {
      release();
    }
  };

  const remove = async (ref: string): Promise<TaskView> => {
    const entry = resolveRef(ref);
    if (!treeFinal(entry)) {
      throw new DrceError("precondition", `task ${entry.status.id} is still running; terminate it first`, { legacyCode: ErrorCode.DeleteData });
    }
    await removeTree(entry);
    return { status: { ...entry.status, state: TaskState.Deleted }, timeMs: timeOf(entry.status), subtasks: [] };
  };

  /**
   * Where a stream's bytes are in its file: below `head` at their own offsets; from `gapEnd`
   * on at `head + (offset - gapEnd)`; between them, not kept (the stream passed the cap).
   * Without a gap both are infinite. `fileEnd` is what the file holds now.
   */
  interface Layout {
    readonly fileEnd: number;
    readonly head: number;
    readonly gapEnd: number;
  }

  const noGap = (fileEnd: number): Layout => ({ fileEnd, head: Number.POSITIVE_INFINITY, gapEnd: Number.POSITIVE_INFINITY });

  /** The layout of a stream from its spool, while the task is live. */
  const liveLayout = (spool: OutputSpool): Layout => {
    // While written, the file is readable up to the head; the tail is stitched on completion.
    if (!spool.complete || !spool.truncated) return noGap(spool.available);
    const fileEnd = spool.available;
    return { fileEnd, head: spool.headBytes, gapEnd: spool.total - (fileEnd - spool.headBytes) };
  };

  /** The layout of a stored stream, from the task's final status and its file. */
  const storedLayout = async (entry: Entry, stream: StreamName): Promise<Layout> => {
    const fileEnd = await store.outputSize(entry.status.id, stream);
    const total = stream === "stdout" ? entry.status.stdoutSize : entry.status.stderrSize;
    const truncated = stream === "stdout" ? entry.status.stdoutTruncated : entry.status.stderrTruncated;
    if (!truncated || total <= fileEnd) return noGap(fileEnd);
    // A truncated file holds exactly the cap: its first half (rounded up) is the head.
    const head = Math.ceil(fileEnd / 2);
    return { fileEnd, head, gapEnd: total - (fileEnd - head) };
  };

  /** Streams a task's output from offsets; with follow, until the task is final. */
  function streamOutput(ref: string, offsets: Readonly<Record<StreamName, number>>, follow: boolean, signal: AbortSignal, streamOptions: OutputStreamOptions = {}): AsyncGenerator<OutputEvent> {
    return streamOutputOf(resolveRef(ref), offsets, follow, signal, false, streamOptions.lendBuffers === true);
  }

  /**
   * Streams an entry's output. Offsets are those of the streams as the command wrote them;
   * where the kept copy was cut, a gap event says where and how much. The `attached` reader
   * (RunTask's) takes the bytes past the head from the spools' live queues instead, so it
   * gets every byte whatever the cap.
   */
  async function* streamOutputOf(entry: Entry, offsets: Readonly<Record<StreamName, number>>, follow: boolean, signal: AbortSignal, attached: boolean, lendBuffers: boolean): AsyncGenerator<OutputEvent> {
    const id = entry.status.id;
    // A reader's files stay until it is done with them (see hold).
    const release = hold(entry);
    const position: Record<StreamName, number> = { stdout: offsets.stdout, stderr: offsets.stderr };
    const handles: Partial<Record<StreamName, Awaited<ReturnType<typeof open>>>> = {};
    const stopped = aborted(signal); // one listener for the whole stream, not one per wait
    let readAhead: { stream: StreamName; offset: number; data: Promise<Buffer> } | undefined;
    /** Since when (performance.now()) a stream's few ready bytes have been held back; see below. */
    const heldSince: Partial<Record<StreamName, number>> = {};
    const bufferFor = chunkBuffers(lendBuffers);
    /** Closes the files (once a read under way has ended) and lets an attached reader's writers go. */
    let released: Promise<void> | undefined;
    const releaseFiles = (): Promise<void> =>
      (released ??= (async () => {
        await readAhead?.data.catch(() => undefined); // its failure is no one's now: the stream is over
        for (const handle of Object.values(handles)) await handle?.close();
        // An attached reader that leaves lets the command's writes go on without it.
        if (attached && entry.attachedSpools !== undefined) {
          for (const spool of [entry.attachedSpools.stdout, entry.attachedSpools.stderr]) spool.detachLive();
          entry.attachedSpools = undefined;
        }
      })());
    // A consumer that goes away while this stream waits at a yield may never resume or end it
    // (a reader dropped for stalling, whose last write never completes): its files are
    // released on the abort itself. A stream that is running sees the abort and ends.
    let atYield = false;
    const onAbort = (): void => {
      if (atYield) void releaseFiles().catch((error: unknown) => options.onInternalError?.(id, error));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        if (signal.aborted) return;
        // Snapshot before reading: if the task was final before this pass, this pass
        // reads everything there will ever be.
        const finalBefore = entry.live === undefined || isFinalState(entry.status.state);
        await entry.live?.started;
        // The attached reader's spools outlast the task's live state: their live queues may
        // still hold the last bytes when the task turns final.
        const spools = attached ? entry.attachedSpools : entry.live?.spools;
        let progressed = false;
        /** The earliest time a held-back stream is due, or undefined when none is held. */
        let heldUntil: number | undefined;
        for (const stream of ["stdout", "stderr"] as const) {
          const live = spools !== undefined && (attached || entry.live !== undefined) ? spools[stream] : undefined;
          if (attached && live?.attached === true && position[stream] >= live.headBytes) {
            // Past the head, the attached reader's bytes wait in the spool's live queue.
            for (let piece = live.takeLive(); piece !== undefined; piece = signal.aborted ? undefined : live.takeLive()) {
              atYield = true;
              yield { kind: "output", chunk: { stream, offset: piece.offset, data: piece.data } };
              atYield = false;
              if (signal.aborted) return;
              position[stream] = piece.offset + piece.data.length;
              progressed = true;
            }
            continue;
          }
          const layout = attached && live !== undefined ? noGap(Math.min(live.available, live.headBytes)) : live !== undefined ? liveLayout(live) : await storedLayout(entry, stream);
          // A stream still being written with less than a message's worth ready is held back
          // for up to OutputSpool.wakeDelayMs, for more: sending each 64 KiB the command writes
          // as its own message costs several times the CPU per byte of sending it by the MiB.
          const available = layout.fileEnd;
          if (live !== undefined && !live.complete && available > position[stream] && available - position[stream] < outputChunkBytes) {
            const now = performance.now();
            const due = (heldSince[stream] ??= now) + OutputSpool.wakeDelayMs;
            if (now < due) {
              heldUntil = Math.min(heldUntil ?? due, due);
              continue;
            }
          }
          delete heldSince[stream];
          while (!signal.aborted) {
            const at = position[stream];
            if (at >= layout.head && at < layout.gapEnd) {
              atYield = true;
              yield { kind: "gap", gap: { stream, offset: at, bytes: layout.gapEnd - at } };
              atYield = false;
              if (signal.aborted) return;
              position[stream] = layout.gapEnd;
              progressed = true;
              continue;
            }
            const fileAt = at < layout.head ? at : layout.head + (at - layout.gapEnd);
            const fileEnd = at < layout.head ? Math.min(layout.head, layout.fileEnd) : layout.fileEnd;
            if (fileAt >= fileEnd) break;
            const handle = (handles[stream] ??= await open(store.outputPath(id, stream), "r"));
            if (signal.aborted) break;
            const data = await (readAhead?.stream === stream && readAhead.offset === fileAt ? readAhead.data : readChunk(handle, fileAt, fileEnd, bufferFor));
            readAhead = undefined;
            if (data.length === 0) break;
            const next = fileAt + data.length;
            // The next chunk is read from the file while this one is sent: the disk (or page
            // cache) and the connection work at once instead of in turn.
            if (next < fileEnd) {
              const ahead = readChunk(handle, next, fileEnd, bufferFor);
              ahead.catch(() => undefined); // handled when awaited; never an unhandled rejection meanwhile
              readAhead = { stream, offset: next, data: ahead };
            }
            atYield = true;
            yield { kind: "output", chunk: { stream, offset: at, data } };
            atYield = false;
            if (signal.aborted) return;
            position[stream] = at + data.length;
            progressed = true;
          }
        }
        if (!follow) return;
        if (finalBefore && !progressed) {
          const view = await viewOf(entry, "none", false);
          atYield = true;
          yield { kind: "result", view };
          return;
        }
        const writing = spools === undefined ? [] : [spools.stdout, spools.stderr].filter((spool) => !spool.complete);
        if (!progressed && entry.live !== undefined && writing.length > 0) {
          // Only spools still being written can change; a complete one would wake us at once.
          // Subscriptions are dropped after the wait, so waits do not pile up on a quiet stream.
          // Bytes held back above are sent after at most OutputSpool.wakeDelayMs.
          let wake!: () => void;
          const woken = new Promise<void>((resolve) => (wake = resolve));
          const unsubscribe = writing.map((spool) => spool.subscribe(wake, attached));
          const timer = heldUntil === undefined ? undefined : setTimeout(wake, Math.max(0, heldUntil - performance.now()));
          await Promise.race([woken, entry.done, stopped]);
          clearTimeout(timer);
          for (const off of unsubscribe) off();
        } else if (!progressed && entry.live !== undefined) {
          // Output is complete; the task turns final once its files and status are written.
          await Promise.race([entry.done, stopped]);
        } else if (!progressed) {
          await Promise.race([entry.done, sleep(50)]);
        }
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      // A read still under way must end before its file closes.
      await releaseFiles();
      release();
    }
  }

  const submit = (input: TaskSpec, signal?: AbortSignal, output?: OutputMode): Promise<SubmitOutcome> => submitWith(input, signal, output ?? "inline", false);

  async function* run(input: TaskSpec, signal: AbortSignal, streamOptions: OutputStreamOptions = {}): AsyncGenerator<RunEvent> {
    const outcome = await submitWith({ ...input, mode: 2 }, undefined, "none", true);
    const id = outcome.view.status.id;
    const entry = entries.get(id);
    if (entry === undefined) throw new DrceError("not-found", `task ${id} vanished`);
    // Held from before the caller hears of it: a quick task must not be swept while the
    // caller is still being told it was accepted.
    const release = hold(entry);
    const onAbort = (): void => {
      if (!isFinalState(entry.status.state)) void terminate(id, defaultTerminate).catch(() => undefined);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      yield { kind: "accepted", view: outcome.view };
      for await (const event of streamOutputOf(entry, { stdout: 0, stderr: 0 }, true, signal, !outcome.existing, streamOptions.lendBuffers === true)) {
        if (event.kind !== "result") yield event;
        else {
          const view = await viewOf(entry, "none", false);
          yield { kind: "result", view };
          if (entry.spec.cleanup) await cleanupDelivered(entry, view);
        }
      }
    } finally {
      release();
      signal.removeEventListener("abort", onAbort);
      // A consumer that stops reading early (cancelled call) terminates the task.
      if (!isFinalState(entry.status.state)) void terminate(id, defaultTerminate).catch(() => undefined);
    }
  }

  const liveHandle = async (ref: string): Promise<ExecHandle> => {
    const entry = resolveRef(ref);
    if (!entry.spec.openStdin) throw new DrceError("precondition", `task ${entry.status.id} was not submitted with open stdin`);
    await entry.live?.started;
    const handle = entry.live?.handle;
    if (handle === undefined) throw new DrceError("precondition", `task ${entry.status.id} is not running`);
    return handle;
  };

  return {
    events,
    slots,
    size: () => entries.size,
    deletions: () => ({ ...deletions }),
    sweepRetention: () => retention.sweep(),
    async init() {
      const loaded = await store.load();
      let recovered = 0;
      for (const { status, request } of loaded) {
        let current = status;
        if (!isFinalState(status.state)) {
          current = await recoverTask(status, store);
          // A node on a full disk still starts and serves what it has: a recovered state that
          // cannot be stored is reported, kept in memory, and found again on the next start.
          const saved = await store.saveStatus(current).then(
            () => true,
            (error: unknown) => {
              options.onInternalError?.(status.id, error);
              return false;
            },
          );
          // The merged output is durable with the status: the rings are not needed any more
          // (a status that could not be saved keeps them for the next start's merge).
          if (saved) for (const stream of ["stdout", "stderr"] as const) removeTail(store.outputPath(current.id, stream));
          recovered++;
        }
        const spec = request !== undefined ? fromStoredSpec(request.spec) : taskSpec({ id: status.id, command: status.command });
        const entry: Entry = {
          status: current,
          digest: request?.digest ?? "",
          spec,
          live: undefined,
          done: Promise.resolve(),
          resolveDone: () => undefined,
          accepted: Promise.resolve(),
          launched: true,
          attachedSpools: undefined,
        };
        entries.set(current.id, entry);
        if (current.alias !== "") {
          const holder = entries.get(aliases.get(current.alias) ?? "");
          if (holder === undefined || holder.status.submittedAt < current.submittedAt) aliases.set(current.alias, current.id);
        }
        if (current !== status) publish(current);
      }
      // Finished trees join the retention queue in the order they finished; the first sweep
      // applies the bounds to what the last run left, while the node starts serving.
      const finishedTrees: { id: string; at: number }[] = [];
      const lastFinish = (entry: Entry): number =>
        Math.max(entry.status.finishedAt || entry.status.submittedAt, ...entry.status.subtaskIds.map((id) => entries.get(id)).filter((e): e is Entry => e !== undefined).map(lastFinish));
      for (const entry of entries.values()) {
        if (rootOf(entry) === entry && treeFinal(entry)) finishedTrees.push({ id: entry.status.id, at: lastFinish(entry) });
      }
      finishedTrees.sort((a, b) => a.at - b.at);
      for (const { id, at } of finishedTrees) retention.finished(id, at);
      initialized = true;
      void retention.sweep();
      return { recovered, loaded: loaded.length };
    },
    async shutdown(graceMs) {
      closing = true;
      retention.close();
      const running = [...entries.values()].filter((e) => e.live !== undefined);
      const stopping = running.map((entry) =>
        stopLive(entry, { state: TaskState.Terminated, errorCode: ErrorCode.Canceled, message: "the node shut down" }, { alg: 1, delayMs: Math.max(100, Math.floor(graceMs / 4)), repeat: 2, signal: 9, cleanup: false }),
      );
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
      await Promise.race([Promise.all([...stopping, ...running.map((e) => e.done)]), grace]);
      // An idle node exits at once: the grace timer must not hold the process.
      clearTimeout(timer);
    },
    submit,
    async check(ref, extended, output) {
      // An extended check is "complete status file data": output and files too (protocol example 2).
      const entry = resolveRef(ref);
      const release = hold(entry);
      try {
        return await viewOf(entry, extended ? (output ?? "inline") : "none", extended);
      } finally {
        release();
      }
    },
    terminate,
    fetch,
    remove,
    list() {
      return [...entries.values()].map((e) => e.status).sort((a, b) => b.submittedAt - a.submittedAt);
    },
    run,
    streamOutput,
    watchEvents(afterSeq, ref, signal) {
      if (ref === "") return events.watch(afterSeq, signal);
      const id = entries.get(ref)?.status.id ?? aliases.get(ref) ?? ref;
      return events.watch(afterSeq, signal, (event) => event.status.id === id || event.status.alias === ref);
    },
    async writeInput(ref, data) {
      await (await liveHandle(ref)).writeInput(data);
    },
    async endInput(ref) {
      (await liveHandle(ref)).endInput();
    },
  };
}
