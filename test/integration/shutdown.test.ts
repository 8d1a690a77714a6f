import { create } from "@bufbuild/protobuf";
import { connect } from "node:net";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TaskMode, TaskSpecSchema, TaskState } from "../../gen/drce/v1/task_pb.js";
import { spawnServe } from "../helpers/child-node.js";
import { trackNodeDebris } from "../helpers/node-debris.js";
import { until } from "../helpers/node.js";
import { liveGroupMembers } from "../helpers/proc.js";

/*
 * Graceful shutdown of a real `drce serve` process on SIGTERM and SIGINT: it stops accepting
 * connections, terminates running process groups (escalating to SIGKILL for a task that
 * ignores SIGTERM), persists their final states, ends open HTTP/2 streams, and exits 0
 * within --shutdown-grace plus a margin.
 */

const graceMs = 3000;
const debris = trackNodeDebris();
const { groups } = debris;

afterAll(debris.clear);

/** Resolves to the error code of a TCP connection attempt, or "connected". */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
  });
}

describe("graceful shutdown of drce serve", { timeout: 120_000 }, () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`on ${signal}: refuses new connections, terminates running groups, persists final states, ends streams, exits in time`, async () => {
      const dataDir = await debris.dataDir("drce-shutdown-");
      const node = debris.track(await spawnServe(["--data-dir", dataDir, "--shutdown-grace", String(graceMs)]));
      const port = Number(new URL(node.url).port);

      const ids = { group: `group-${signal}`, stubborn: `stubborn-${signal}` };
      await node.client.submitTask({ task: create(TaskSpecSchema, { id: ids.group, command: "sleep 300 & sleep 300", mode: TaskMode.ASYNC }) });
      // Ignores SIGTERM: only the SIGKILL of the shutdown's terminate algorithm ends it.
      await node.client.submitTask({ task: create(TaskSpecSchema, { id: ids.stubborn, command: "trap '' TERM; echo ready; while :; do sleep 1; done", mode: TaskMode.ASYNC }) });
      const pgids: number[] = [];
      for (const id of Object.values(ids)) {
        const running = await until(() => node.client.getTask({ task: id }), (r) => r.result?.state === TaskState.IN_PROGRESS, 15_000, `${id} running`);
        pgids.push(running.result!.pid);
        groups.add(running.result!.pid);
      }
      await until(() => liveGroupMembers(pgids[0]!).length, (n) => n >= 3, 5000, "the group's three processes");
      // An open HTTP/2 stream: following the stubborn task's output.
      const follow = (async () => {
        const seen: string[] = [];
        try {
          for await (const message of node.client.streamTaskOutput({ task: ids.stubborn, follow: true })) seen.push(message.event.case ?? "");
          return "ended";
        } catch {
          return "ended with an error";
        }
      })();
      await until(() => node.client.getTask({ task: ids.stubborn, extended: true }), (r) => Buffer.from(r.result!.stdout).toString() === "ready\n", 10_000, "ready");

      const stopping = Date.now();
      node.proc.kill(signal);
      // New connections are refused while the running tasks are still being stopped.
      let refused = false;
      while (node.proc.exitCode === null && node.proc.signalCode === null && !refused) {
        refused = (await tryConnect(port)) === "ECONNREFUSED";
      }
      const exit = await node.exit(graceMs + 10_000);
      const elapsed = Date.now() - stopping;
      expect(refused).toBe(true);
      expect(exit).toEqual({ code: 0, signal: null });
      expect(elapsed).toBeLessThan(graceMs + 3000);
      expect(await follow).toMatch(/^ended/);

      for (const pgid of pgids) expect(liveGroupMembers(pgid)).toEqual([]);
      for (const id of Object.values(ids)) {
        const status = JSON.parse(await readFile(join(dataDir, "tasks", id, "status.json"), "utf8")) as { state: number; errorCode: number; finishedAt: number };
        expect(status.state, id).toBe(4);
        expect(status.errorCode, id).toBe(118);
        expect(status.finishedAt, id).toBeGreaterThan(0);
      }
      expect(node.log()).not.toMatch(/"level":(50|60)/);
    });
  }
});
