import { create } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";
import { totalmem } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { TerminateAlgorithm } from "../../gen/drce/v1/task_service_pb.js";
import { metricValue, scrape } from "../helpers/metrics.js";
import { startNode, until, type TestNode } from "../helpers/node.js";

/*
 * GET /metrics on a real node: Prometheus text from the node's own registry, figures that
 * follow real tasks, and the same bearer token as POST /drce.
 */

const uid = (prefix: string): string => `${prefix}-${randomBytes(4).toString("hex")}`;

describe("GET /metrics", () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ maxConcurrent: 1 });
  });
  afterAll(async () => {
    await node?.stop();
  });

  it("answers Prometheus text with every metric the README lists", async () => {
    const response = await fetch(`${node.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    for (const name of [
      "drce_tasks",
      "drce_tasks_running",
      "drce_tasks_queued",
      "drce_tasks_submitted_total",
      "drce_tasks_finished_total",
      "drce_task_duration_seconds",
      "drce_notifications_delivered_total",
      "drce_notification_retries_total",
      "drce_notifications_undeliverable_total",
      "drce_host_cpu_percent",
      "drce_host_iowait_percent",
      "drce_host_rram_used_percent",
      "drce_host_vram_used_percent",
      "drce_host_memory_total_bytes",
      "drce_host_memory_available_bytes",
      "drce_host_disk_used_percent",
      "drce_host_disk_free_bytes",
      "drce_host_processes",
      "drce_host_threads",
      "drce_host_load1",
      "drce_host_sample_timestamp_seconds",
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    // The node's own registry: nothing of prom-client's global default metrics.
    expect(text).not.toContain("process_cpu_user_seconds_total");
    // Host figures come from the cached sample the node took at start.
    expect(metricValue(text, "drce_host_memory_total_bytes")).toBe(totalmem());
    expect(metricValue(text, "drce_host_processes")).toBeGreaterThan(1);
    expect(metricValue(text, "drce_host_sample_timestamp_seconds")).toBeGreaterThan(0);
  });

  it("counts submitted and finished tasks, their durations, and the tasks held by state", async () => {
    const before = await scrape(node.url);
    const finishedBefore = metricValue(before, "drce_tasks_finished_total", { state: "finished" }) ?? 0;
    const submittedBefore = metricValue(before, "drce_tasks_submitted_total") ?? 0;
    const durationsBefore = metricValue(before, "drce_task_duration_seconds_count", { state: "finished" }) ?? 0;
    const heldBefore = metricValue(before, "drce_tasks", { state: "finished" }) ?? 0;

    // A parent and its subtask: two tasks submitted, two finished.
    await node.client.submitTask({ task: create(TaskSpecSchema, { id: uid("m"), command: "true", mode: TaskMode.SYNC, subtasks: [{ id: uid("m-sub"), command: "true", mode: TaskMode.SYNC }] }) });
    const after = await until(() => scrape(node.url), (t) => (metricValue(t, "drce_tasks_finished_total", { state: "finished" }) ?? 0) >= finishedBefore + 2, 10_000, "finished counter");
    expect(metricValue(after, "drce_tasks_finished_total", { state: "finished" })).toBe(finishedBefore + 2);
    expect(metricValue(after, "drce_tasks_submitted_total")).toBe(submittedBefore + 2);
    expect(metricValue(after, "drce_task_duration_seconds_count", { state: "finished" })).toBe(durationsBefore + 2);
    expect(metricValue(after, "drce_task_duration_seconds_bucket", { state: "finished", le: "+Inf" })).toBe(durationsBefore + 2);
    expect(metricValue(after, "drce_tasks", { state: "finished" })).toBe(heldBefore + 2);
    expect(metricValue(after, "drce_tasks", { state: "in_progress" })).toBe(0);
  });

  it("shows the running task and the queue length", async () => {
    const running = uid("m-run");
    const waiting = uid("m-wait");
    await node.client.submitTask({ task: create(TaskSpecSchema, { id: running, command: "sleep 30", mode: TaskMode.ASYNC }) });
    await until(async () => (await node.client.getTask({ task: running })).result!.state, (s) => s === TaskState.IN_PROGRESS, 10_000, "running");
    await node.client.submitTask({ task: create(TaskSpecSchema, { id: waiting, command: "true", mode: TaskMode.ASYNC }) });
    const text = await until(() => scrape(node.url), (t) => metricValue(t, "drce_tasks_queued") === 1, 10_000, "one queued task");
    expect(metricValue(text, "drce_tasks_running")).toBe(1);
    expect(metricValue(text, "drce_tasks", { state: "in_progress" })).toBe(1);
    expect(metricValue(text, "drce_tasks", { state: "queued" })).toBe(1);

    await node.client.terminateTask({ task: running, alg: TerminateAlgorithm.SIGNAL, signal: 9, delayMs: 100 });
    const drained = await until(() => scrape(node.url), (t) => metricValue(t, "drce_tasks_running") === 0 && metricValue(t, "drce_tasks_queued") === 0, 10_000, "an idle node");
    expect(metricValue(drained, "drce_tasks_finished_total", { state: "terminated" })).toBeGreaterThanOrEqual(1);
  });

  it("refuses other methods than GET and HEAD", async () => {
    const response = await fetch(`${node.url}/metrics`, { method: "POST", body: "x" });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, HEAD");
  });
});

describe("GET /metrics with a token", () => {
  const token = "metrics-token-0123";
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ token });
  });
  afterAll(async () => {
    await node?.stop();
  });

  it("answers 401 without the token, as POST /drce does", async () => {
    for (const headers of [{}, { authorization: "Bearer wrong" }, { authorization: "Basic bWV0cmljcw==" }, { authorization: "Bearer " }]) {
      const response = await fetch(`${node.url}/metrics`, { headers });
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toBe("Bearer");
      expect(await response.text()).not.toContain("drce_tasks");
      const legacy = await fetch(`${node.url}/drce`, { method: "POST", headers, body: "{}" });
      expect(legacy.status).toBe(401);
    }
  });

  it("answers the metrics with the token", async () => {
    const text = await scrape(node.url, token);
    expect(metricValue(text, "drce_tasks_running")).toBe(0);
  });
});
