import type { NodeIdentity, TaskEvent } from "../core/api.js";
import type { NodeParts } from "../core/node-parts.js";
import type { ResourceReport } from "../core/resource-log.js";
import type { SequenceLog } from "../core/sequence-log.js";
import { TaskState } from "../domain/states.js";
import { encodeErrorItem, encodeTaskView, formatFieldValue, LegacyRequestType, type LegacyResultItem } from "./legacy-codec.js";

/** A legacy result item as a notification carries it: the item plus its sequence number and time. */
export interface LegacyNotificationItem extends LegacyResultItem {
  /** Sequence number of the event (type 100) or the report (type 101) on this node. */
  seq: number;
  /** Unix ms of the state change or of the host sample. */
  at: number;
}

/** Counts a notifier keeps (exposed as metrics). */
export interface NotificationCounts {
  /** Notifications the receiver accepted (answered 2xx). */
  readonly delivered: number;
  /** Attempts that failed (no answer, or not 2xx) and were retried. */
  readonly retries: number;
  /** Notifications that left the bounded history before the receiver took them. */
  readonly undeliverable: number;
}

/** The part of a pino logger the notifier uses. */
export interface NotifierLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** Options of {@link createNotifier}. */
export interface NotifierOptions {
  /** Where every notification is POSTed (http or https). */
  readonly url: string;
  /** Sent as `Authorization: Bearer <token>` when not empty. */
  readonly token?: string;
  /** The task event log (notifications of type 100). */
  readonly events: NodeParts["events"];
  /** The resource report log (notifications of type 101); without it none are sent. */
  readonly reports?: SequenceLog<ResourceReport> | undefined;
  /** How the node names itself in items; read when an item is built, so a port bound later shows. */
  readonly identity: NodeParts["identity"];
  /** Milliseconds one POST may take before it counts as failed; 5000 unless given. */
  readonly timeoutMs?: number;
  /** First retry delay, ms; 100 unless given. It doubles per failure up to retryMaxMs. */
  readonly retryMinMs?: number;
  /** Longest retry delay, ms; 30000 unless given. */
  readonly retryMaxMs?: number;
  /** Told when the receiver stops and starts taking notifications again. */
  readonly logger?: NotifierLogger | undefined;
}

/** A running notifier; see {@link createNotifier}. */
export interface Notifier {
  /** What was delivered, retried and lost so far. */
  counts(): NotificationCounts;
  /**
   * Stops delivering: waits up to `drainMs` for the task events published so far to be
   * delivered (resource reports are not waited for), then aborts any POST under way.
   */
  close(drainMs?: number): Promise<void>;
}

/**
 * Builds the notification of a task state change: a legacy result item of type 100 with the
 * task's id, state, pid, exit status, error, running time and, once sampled, its usage peaks
 * (TASK_CPU, TASK_VRAM, TASK_RRAM, TASK_THREADS) in `fields`; no output and no files.
 */
export function encodeTaskNotification(event: TaskEvent, identity: NodeIdentity): LegacyNotificationItem {
  const item = encodeTaskView({ status: event.status, timeMs: event.timeMs, subtasks: [], fields: event.status.usage }, identity, LegacyRequestType.StateNotification);
  return { ...item, seq: event.seq, at: event.at };
}

/**
 * Builds the notification of a resource report: a legacy result item of type 101, id 0,
 * state 0, whose `fields` are the NODE_RESOURCE_USAGE figures (CPU, IOWAIT, VRAM, RRAM, DISK,
 * PROCESSES, THREADS, LOADAVG, each a percentage written as the original wrote fields).
 */
export function encodeResourceNotification(report: ResourceReport, identity: NodeIdentity): LegacyNotificationItem {
  const item = encodeErrorItem(identity, { id: 0, type: LegacyRequestType.ResourceNotification, errorCode: 0, message: "", state: TaskState.Finished });
  const fields = Object.fromEntries(Object.entries(report.usage).map(([name, value]: [string, number]) => [name, formatFieldValue(name, value)]));
  return { ...item, fields, seq: report.seq, at: report.at };
}

/** One of the logs the notifier reads, with its cursor. */
interface Source {
  readonly kind: "event" | "report";
  readonly log: SequenceLog<TaskEvent> | SequenceLog<ResourceReport>;
  readonly items: AsyncIterator<TaskEvent | ResourceReport>;
  /** The last sequence number taken from the log (delivered or counted as lost). */
  cursor: number;
  /** The next item once read, not yet delivered. */
  ready: IteratorResult<TaskEvent | ResourceReport> | undefined;
  pending: Promise<unknown> | undefined;
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });

/**
 * Creates the notifier: it POSTs every task state event (type 100) and every resource report
 * (type 101) published from now on to `url`, as a JSON array holding one legacy result item.
 * Delivery is in order and one POST at a time, reading the sequence logs with a cursor, so a
 * slow or absent receiver never holds a task up. A failed POST (no answer within the timeout,
 * or a status other than 2xx) is retried after an exponential delay with jitter, bounded by
 * `retryMaxMs`, for as long as the item is still in its log's bounded history; an item that
 * leaves the history first is counted as undeliverable and skipped. Delivery is at least once:
 * a receiver that took a POST but whose answer was lost gets it again, with the same `seq`.
 */
export function createNotifier(options: NotifierOptions): Notifier {
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new TypeError(`createNotifier: ${JSON.stringify(options.url)} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new TypeError(`createNotifier: the URL must be http or https, not ${url.protocol}`);
  const timeoutMs = options.timeoutMs ?? 5000;
  const retryMinMs = options.retryMinMs ?? 100;
  const retryMaxMs = Math.max(retryMinMs, options.retryMaxMs ?? 30_000);
  for (const [name, value] of [["timeoutMs", timeoutMs], ["retryMinMs", retryMinMs], ["retryMaxMs", retryMaxMs]] as const) {
    if (!Number.isFinite(value) || value <= 0) throw new RangeError(`createNotifier: ${name} must be a positive number, not ${value}`);
  }
  const { identity, logger } = options;
  const headers: Record<string, string> = { "content-type": "application/json", "user-agent": "drce-notifier" };
  if (options.token !== undefined && options.token !== "") headers["authorization"] = `Bearer ${options.token}`;

  const stop = new AbortController();
  const counts = { delivered: 0, retries: 0, undeliverable: 0 };
  let receiverDown = false;

  const open = (kind: Source["kind"], log: SequenceLog<TaskEvent> | SequenceLog<ResourceReport>): Source => {
    // From the log's end as it is now: the receiver gets what happens from here on.
    const cursor = log.lastSeq;
    const watched = (log as SequenceLog<TaskEvent | ResourceReport>).watch(cursor === 0 ? -1 : cursor, stop.signal);
    return { kind, log, items: watched[Symbol.asyncIterator](), cursor, ready: undefined, pending: undefined };
  };
  const sources: Source[] = [open("event", options.events)];
  if (options.reports !== undefined) sources.push(open("report", options.reports));

  /** POSTs one body; true when the receiver answered 2xx. */
  const post = async (body: string): Promise<boolean> => {
    try {
      const response = await fetch(url, { method: "POST", headers, body, signal: AbortSignal.any([stop.signal, AbortSignal.timeout(timeoutMs)]) });
      // Read the answer out so the connection can be reused.
      await response.arrayBuffer().catch(() => undefined); // the status below decides; a body that breaks costs only the connection's reuse
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      if (receiverDown) logger?.info({ url: url.origin }, "notification receiver is taking notifications again");
      receiverDown = false;
      return true;
    } catch (error) {
      if (!receiverDown && !stop.signal.aborted) logger?.warn({ url: url.origin, err: String(error) }, "notification receiver failed; retrying");
      receiverDown = true;
      return false;
    }
  };

  /** Delivers one item, retrying while it is still kept in its log. */
  const deliver = async (source: Source, item: TaskEvent | ResourceReport): Promise<void> => {
    const encoded = source.kind === "event" ? encodeTaskNotification(item as TaskEvent, identity) : encodeResourceNotification(item as ResourceReport, identity);
    const body = JSON.stringify([encoded]);
    for (let attempt = 0; !stop.signal.aborted; attempt++) {
      // An item that left the bounded history while the receiver was away is given up.
      if (item.seq < source.log.oldestSeq) {
        counts.undeliverable++;
        return;
      }
      if (await post(body)) {
        counts.delivered++;
        return;
      }
      if (stop.signal.aborted) return;
      counts.retries++;
      const ceiling = Math.min(retryMaxMs, retryMinMs * 2 ** Math.min(attempt, 30));
      // "Equal jitter": at least half the delay, so retries never hammer, never in lockstep.
      await sleep(ceiling / 2 + Math.random() * (ceiling / 2), stop.signal);
    }
  };

  const loop = async (): Promise<void> => {
    while (!stop.signal.aborted) {
      for (const source of sources) {
        if (source.ready === undefined && source.pending === undefined) {
          source.pending = source.items.next().then((result) => {
            source.ready = result;
            source.pending = undefined;
          });
        }
      }
      const ready = sources.filter((s) => s.ready !== undefined && s.ready.done !== true);
      if (ready.length === 0) {
        if (sources.every((s) => s.ready?.done === true)) return;
        await Promise.race(sources.map((s) => s.pending).filter((p) => p !== undefined));
        continue;
      }
      // The older of the two heads goes first; a task event wins a tie.
      let source = ready[0]!;
      for (const other of ready) if ((other.ready!.value as { at: number }).at < (source.ready!.value as { at: number }).at) source = other;
      const item = source.ready!.value as TaskEvent | ResourceReport;
      source.ready = undefined;
      // The log hands a watcher that fell behind its oldest kept item: what lies between was lost.
      if (item.seq > source.cursor + 1) counts.undeliverable += item.seq - source.cursor - 1;
      await deliver(source, item);
      source.cursor = Math.max(source.cursor, item.seq);
    }
  };
  const running = loop().catch((error: unknown) => logger?.warn({ err: String(error) }, "notifier stopped"));

  return {
    counts: () => ({ ...counts }),
    async close(drainMs = 0) {
      if (stop.signal.aborted) return running;
      const events = sources[0]!;
      const target = options.events.lastSeq;
      const deadline = Date.now() + drainMs;
      while (events.cursor < target && Date.now() < deadline && !receiverDown) await sleep(20, stop.signal);
      stop.abort();
      await running;
    },
  };
}
