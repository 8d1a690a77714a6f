import { create } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema } from "../../gen/drce/v1/task_pb.js";
import type { Config } from "../../src/config.js";
import { metricValue, scrape } from "../helpers/metrics.js";
import { startNode, until, type TestNode } from "../helpers/node.js";
import { startReceiver, type Receiver } from "../helpers/receiver.js";

/*
 * Notifications (legacy 100 and 101) POSTed by a real node to a real receiver on 127.0.0.1:
 * order, sequence numbers, resumption after the receiver was away, retries, lost history.
 */

const uid = (prefix: string): string => `${prefix}-${randomBytes(4).toString("hex")}`;
type Item = Record<string, unknown> & { type: number; seq: number; id: unknown; state: number; at: number };

const opened: { nodes: TestNode[]; receivers: Receiver[] } = { nodes: [], receivers: [] };

afterEach(async () => {
  await Promise.all(opened.nodes.splice(0).map((n) => n.stop()));
  await Promise.all(opened.receivers.splice(0).map((r) => r.stop()));
});

async function setUp(receiverPort = 0, overrides: Partial<Config> = {}): Promise<{ node: TestNode; receiver: Receiver }> {
  const receiver = await startReceiver(receiverPort);
  opened.receivers.push(receiver);
  const node = await startNode({ notifyUrl: receiver.url, notifyRetryMaxMs: 400, notifyReports: false, ...overrides });
  opened.nodes.push(node);
  return { node, receiver };
}

const taskItems = (receiver: Receiver): Item[] => (receiver.accepted() as Item[]).filter((item) => item.type === 100);
const run = async (node: TestNode, id: string, command = "echo hi"): Promise<void> => {
  await node.client.submitTask({ task: create(TaskSpecSchema, { id, command, mode: TaskMode.SYNC }) });
};

/** Expects sequence numbers to go up by exactly one: nothing missing, nothing twice. */
function expectContiguous(seqs: number[]): void {
  expect(seqs.length).toBeGreaterThan(0);
  expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
}

describe("task state notifications (100)", () => {
  it("the receiver sees every transition of a task, in order, with increasing sequence numbers", async () => {
    const { node, receiver } = await setUp();
    const id = uid("n1");
    await run(node, id, "echo out; exit 3");
    const items = await until(() => taskItems(receiver).filter((i) => i.id === id), (list) => list.some((i) => i.state === 0), 15_000, "the final notification");

    expect(items.map((i) => i.state)).toEqual([2, 1, 0]); // new, in progress, finished
    expectContiguous(items.map((i) => i.seq));
    expect(items.map((i) => i.at)).toEqual([...items.map((i) => i.at)].sort((a, b) => a - b));
    const final = items[2]!;
    expect(final).toMatchObject({ type: 100, exit_status: 3, error_code: 0, host: "127.0.0.1", port: Number(new URL(node.url).port), stdout: "", subtasks: [] });
    expect(final["pid"]).toBeGreaterThan(0);
    expect(items[1]!["pid"]).toBe(final["pid"]);
    // Every POST is a JSON array holding one item; without --notify-token no Authorization goes out.
    expect(receiver.posts.every((p) => Array.isArray(p.body) && p.body.length === 1 && p.authorization === undefined)).toBe(true);
  });

  it("a receiver that was away gets every missed event in order, none twice, once it is back", async () => {
    const { node, receiver } = await setUp();
    const first = uid("before");
    await run(node, first);
    await until(() => taskItems(receiver).length, (n) => n === 3, 15_000, "the first task's three notifications");

    await receiver.stop();
    const missed = [uid("away-a"), uid("away-b"), uid("away-c")];
    for (const id of missed) await run(node, id);
    expect(node.app.core.events.lastSeq).toBe(12);
    // Failed attempts while it is away are retried (visible in the metrics).
    await until(async () => metricValue(await scrape(node.url), "drce_notification_retries_total") ?? 0, (n) => n >= 2, 15_000, "retries");

    await receiver.start();
    const items = await until(() => taskItems(receiver), (list) => list.length >= 12, 20_000, "the missed notifications");
    await new Promise((r) => setTimeout(r, 300)); // room for a duplicate to show up, if there were one
    const all = taskItems(receiver);
    expect(all).toHaveLength(12);
    expectContiguous(all.map((i) => i.seq));
    expect(all[0]!.seq).toBe(1);
    for (const id of missed) expect(items.filter((i) => i.id === id).map((i) => i.state)).toEqual([2, 1, 0]);
    const text = await scrape(node.url);
    expect(metricValue(text, "drce_notifications_delivered_total")).toBe(12);
    expect(metricValue(text, "drce_notifications_undeliverable_total")).toBe(0);
  });

  it("a receiver answering 500 gets the same notification again until it answers 200, with the token", async () => {
    const receiverToken = "receiver-secret";
    const { node, receiver } = await setUp(0, { notifyToken: receiverToken });
    receiver.answer = ({ index }) => (index < 3 ? 500 : 200);
    const id = uid("r500");
    await run(node, id);
    const items = await until(() => taskItems(receiver), (list) => list.length >= 3, 15_000, "the notifications after the failures");

    expect(receiver.posts.slice(0, 4).map((p) => p.status)).toEqual([500, 500, 500, 200]);
    // The three refused POSTs and the accepted one carry the same event.
    expect(receiver.posts.slice(0, 4).map((p) => (p.body as Item[])[0]!.seq)).toEqual([1, 1, 1, 1]);
    expect(items.map((i) => i.state)).toEqual([2, 1, 0]);
    expectContiguous(items.map((i) => i.seq));
    expect(receiver.posts.every((p) => p.authorization === `Bearer ${receiverToken}`)).toBe(true);
    const text = await scrape(node.url);
    expect(metricValue(text, "drce_notification_retries_total")).toBe(3);
  });

  it("events that left the bounded history while the receiver was away are counted as undeliverable", async () => {
    const { node, receiver } = await setUp(0, { eventHistory: 3 });
    await receiver.stop();
    for (let i = 0; i < 4; i++) await run(node, uid("lost"));
    const last = node.app.core.events.lastSeq;
    expect(last).toBe(12);
    await receiver.start();

    const items = await until(() => taskItems(receiver), (list) => list.at(-1)?.seq === last, 20_000, "the newest event");
    expectContiguous(items.map((i) => i.seq));
    const text = await until(() => scrape(node.url), (t) => (metricValue(t, "drce_notifications_undeliverable_total") ?? 0) + items.length === last, 5000, "lost events counted");
    const lost = metricValue(text, "drce_notifications_undeliverable_total")!;
    expect(lost).toBeGreaterThanOrEqual(last - 3 - 1); // at most the history and the one in hand were kept
    expect(items.length).toBeLessThanOrEqual(4);
  });

  it("a node whose receiver is away still closes promptly, and a closed node sends nothing more", async () => {
    const { node, receiver } = await setUp();
    await receiver.stop();
    await run(node, uid("closing"));
    await until(async () => metricValue(await scrape(node.url), "drce_notification_retries_total") ?? 0, (n) => n >= 1, 15_000, "a failed attempt");
    const started = Date.now();
    opened.nodes.splice(opened.nodes.indexOf(node), 1);
    await node.stop();
    expect(Date.now() - started).toBeLessThan(10_000);
    await receiver.start();
    await new Promise((r) => setTimeout(r, 1000)); // a notifier left running would retry within 400 ms
    expect(receiver.posts).toHaveLength(0);
  });
});

describe("resource notifications (101)", () => {
  it("a report arrives per host sample, with the NODE_RESOURCE_USAGE figures and increasing sequence numbers", async () => {
    const { node, receiver } = await setUp(0, { notifyReports: true, sampleIntervalMs: 100 });
    const reports = await until(() => (receiver.accepted() as Item[]).filter((i) => i.type === 101), (list) => list.length >= 2, 20_000, "two resource reports");
    expectContiguous(reports.map((r) => r.seq));
    const report = reports[0]!;
    expect(report).toMatchObject({ type: 101, id: 0, state: 0, error_code: 0, host: "127.0.0.1", port: Number(new URL(node.url).port), node: node.app.config.name });
    const fields = report["fields"] as Record<string, string>;
    expect(Object.keys(fields).sort()).toEqual(["CPU", "DISK", "IOWAIT", "LOADAVG", "PROCESSES", "RRAM", "THREADS", "VRAM"]);
    for (const value of Object.values(fields)) expect(value).toMatch(/^\d+\.\d{6}$/);
    expect(Number(fields["RRAM"])).toBeGreaterThan(0);
    expect(report.at).toBeGreaterThan(0);
  });
});
