import type http from "node:http";
import type http2 from "node:http2";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { TaskEvent } from "./core/api.js";
import type { NodeParts } from "./core/node-parts.js";
import { isFinalState, stateNames, TaskState } from "./domain/states.js";
import type { HostSnapshot } from "./executor/host-sampler.js";
import type { NotificationCounts } from "./gateway/notifier.js";

/** The path of the Prometheus endpoint on the node's port. */
export const metricsHttpPath = "/metrics";

/** What the metrics read from the node: its tasks, slots, event log and deletions (see {@link NodeParts}). */
export type MetricsCoreView = Pick<NodeParts, "list" | "slots" | "events" | "deletions">;

/** Options of {@link createNodeMetrics}. */
export interface NodeMetricsOptions {
  /** The task core. */
  readonly core: MetricsCoreView;
  /** The latest cached host sample; called on scrape, so it must do no I/O. */
  readonly host: () => HostSnapshot;
  /** The notifier's counts, when notifications are configured. */
  readonly notifications?: (() => NotificationCounts) | undefined;
  /** Faults of the node (not of its tasks) reported so far, each also logged; absent on a node without a task core. */
  readonly internalErrors?: (() => number) | undefined;
}

/** A node's metrics in a registry of its own; see {@link createNodeMetrics}. */
export interface NodeMetrics {
  /** The node's own registry (never prom-client's global one). */
  readonly registry: Registry;
  /** The metrics in the Prometheus text format. */
  render(): Promise<string>;
  /** Answers `GET /metrics` (and HEAD); other methods get 405. */
  serve(req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): Promise<void>;
  /** Stops following the event log. */
  close(): void;
}

/** States a held task can be in; each gets a series, zero included, so dashboards see them all. */
const heldStates = [TaskState.Finished, TaskState.InProgress, TaskState.New, TaskState.Terminated, TaskState.Crashed, TaskState.NotSet, TaskState.Queued, TaskState.Expired];

/** Label value of a state: its name with underscores ("in_progress"). */
const stateLabel = (state: number): string => (stateNames[state] ?? String(state)).replace(/ /g, "_");

/**
 * Creates the node's Prometheus metrics: tasks by state, running and queued tasks, tasks
 * submitted and finished, task durations, notification counts and the host figures. Gauges
 * are computed when scraped from in-memory state and the cached host sample (no sampling on
 * the request path); counters and the duration histogram follow the task event log from now
 * on, so each event is counted once whatever the transport that caused it.
 */
export function createNodeMetrics(options: NodeMetricsOptions): NodeMetrics {
  const { core, host } = options;
  if (typeof core?.list !== "function") throw new TypeError("createNodeMetrics: core is required");
  if (typeof host !== "function") throw new TypeError("createNodeMetrics: host must be a function");
  const registry = new Registry();

  new Gauge({
    name: "drce_tasks",
    help: "Tasks the node holds, by state.",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      const counts = new Map<number, number>(heldStates.map((s) => [s, 0]));
      for (const status of core.list()) counts.set(status.state, (counts.get(status.state) ?? 0) + 1);
      this.reset();
      for (const [state, count] of counts) this.set({ state: stateLabel(state) }, count);
    },
  });
  new Gauge({
    name: "drce_tasks_running",
    help: "Tasks holding an execution slot.",
    registers: [registry],
    collect() {
      this.set(core.slots.active);
    },
  });
  new Gauge({
    name: "drce_tasks_queued",
    help: "Tasks waiting for an execution slot (the queue length).",
    registers: [registry],
    collect() {
      this.set(core.slots.queued);
    },
  });
  const submitted = new Counter({ name: "drce_tasks_submitted_total", help: "Tasks accepted, subtasks included.", registers: [registry] });
  const finished = new Counter({ name: "drce_tasks_finished_total", help: "Tasks that reached a final state, by state.", labelNames: ["state"], registers: [registry] });
  const durations = new Histogram({
    name: "drce_task_duration_seconds",
    help: "Running time of tasks that ran, observed when they reach a final state.",
    labelNames: ["state"],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
    registers: [registry],
  });

  const deletedSoFar = { request: 0, age: 0, count: 0 };
  new Counter({
    name: "drce_tasks_deleted_total",
    help: "Tasks deleted (state 9), subtasks included, by reason: request (rm, fetch with delete, cleanup), retention_age (older than --retain-finished), retention_count (past --retain-max-tasks).",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      const now = core.deletions?.() ?? deletedSoFar;
      // Every series exists from the first scrape, zero included.
      for (const [key, label] of [["request", "request"], ["age", "retention_age"], ["count", "retention_count"]] as const) {
        this.inc({ reason: label }, Math.max(0, now[key] - deletedSoFar[key]));
        deletedSoFar[key] = now[key];
      }
    },
  });

  let internalSoFar = 0;
  new Counter({
    name: "drce_internal_errors_total",
    help: "Faults of the node itself (a storage failure under a task, a bug), each also logged as an internal error; a task they hit ends with error 107.",
    registers: [registry],
    collect() {
      const now = options.internalErrors?.() ?? 0;
      // prom-client counters cannot be set: each scrape adds what the core counted since the last.
      if (now > internalSoFar) this.inc(now - internalSoFar);
      internalSoFar = now;
    },
  });

  const notifications = options.notifications;
  const reported = { delivered: 0, retries: 0, undeliverable: 0 };
  // prom-client counters cannot be set: each scrape adds what the notifier counted since the last.
  const notificationCounter = (name: string, help: string, key: keyof NotificationCounts): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const now = notifications?.()[key] ?? 0;
        if (now > reported[key]) this.inc(now - reported[key]);
        reported[key] = now;
      },
    });
  };
  notificationCounter("drce_notifications_delivered_total", "Notifications (legacy 100 and 101) the receiver accepted.", "delivered");
  notificationCounter("drce_notification_retries_total", "Notification attempts that failed and were retried.", "retries");
  notificationCounter("drce_notifications_undeliverable_total", "Notifications that left the bounded history before the receiver took them.", "undeliverable");

  const hostGauge = (name: string, help: string, read: (s: HostSnapshot) => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(host()));
      },
    });
  };
  hostGauge("drce_host_cpu_percent", "Host CPU busy over the last sample interval, percent.", (s) => s.cpuPercent);
  hostGauge("drce_host_iowait_percent", "Host CPU time waiting for I/O over the last sample interval, percent.", (s) => s.iowaitPercent);
  hostGauge("drce_host_rram_used_percent", "Host real memory in use, percent.", (s) => s.rramUsedPercent);
  hostGauge("drce_host_vram_used_percent", "Host virtual memory (real plus swap) in use, percent.", (s) => s.vramUsedPercent);
  hostGauge("drce_host_memory_total_bytes", "Host real memory.", (s) => s.memTotal);
  hostGauge("drce_host_memory_available_bytes", "Host real memory available without swapping.", (s) => s.memAvailable);
  hostGauge("drce_host_disk_used_percent", "Space in use on the data directory's partition, percent.", (s) => s.diskUsedPercent);
  hostGauge("drce_host_disk_free_bytes", "Space available on the data directory's partition.", (s) => s.diskFree);
  hostGauge("drce_host_processes", "Processes on the host.", (s) => s.processes);
  hostGauge("drce_host_threads", "Threads on the host.", (s) => s.threads);
  hostGauge("drce_host_load1", "One-minute load average.", (s) => s.loadAvg1);
  hostGauge("drce_host_sample_timestamp_seconds", "When the host figures were sampled, Unix seconds (0 before the first sample).", (s) => s.sampledAt / 1000);

  const observe = (event: TaskEvent): void => {
    const status = event.status;
    // A task is born as "new" (a root) or "queued" (a subtask, created with its parent).
    if (status.startedAt === 0 && (status.state === TaskState.New || (status.state === TaskState.Queued && status.parentId !== "")) && status.finishedAt === 0) {
      submitted.inc();
      return;
    }
    if (!isFinalState(status.state)) return;
    const state = stateLabel(status.state);
    finished.inc({ state });
    if (status.startedAt > 0) durations.observe({ state }, event.timeMs / 1000);
  };

  const stop = new AbortController();
  // Start at the log's current end: the node counts what happens from now on.
  const from = core.events.lastSeq === 0 ? -1 : core.events.lastSeq;
  const follow = async (): Promise<void> => {
    for await (const event of core.events.watch(from, stop.signal)) observe(event);
  };
  void follow();

  return {
    registry,
    render: () => registry.metrics(),
    async serve(req, res) {
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.statusCode = 405;
        res.setHeader("allow", "GET, HEAD");
        res.end();
        return;
      }
      try {
        const body = await registry.metrics();
        res.statusCode = 200;
        res.setHeader("content-type", registry.contentType);
        res.end(req.method === "HEAD" ? "" : body);
      } catch {
        res.statusCode = 500;
        res.setHeader("content-type", "text/plain; charset=utf-8");
        res.end("metrics unavailable\n");
      }
    },
    close() {
      stop.abort();
    },
  };
}
