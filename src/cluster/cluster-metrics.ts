import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { Membership } from "./membership.js";

/** What the manager's metrics record as it forwards tasks. */
export interface ClusterMetrics {
  /** Records one forwarding to a node: the milliseconds from the request to the node's acceptance. */
  dispatched(node: string, ms: number): void;
}

/**
 * Registers a manager's per-node metrics in the node's registry: whether each node is up,
 * its state, its load average and free slots (read from the node list when scraped), the
 * tasks placed on it, and the dispatch latency (request to the node's acceptance).
 */
export function registerClusterMetrics(registry: Registry, members: Membership): ClusterMetrics {
  new Gauge({
    name: "drce_cluster_node_up",
    help: "1 when the data node answered within its last heartbeat interval, else 0.",
    labelNames: ["node"],
    registers: [registry],
    collect() {
      this.reset();
      for (const member of members.members()) this.set({ node: member.name }, member.state === "up" ? 1 : 0);
    },
  });
  new Gauge({
    name: "drce_cluster_node_state",
    help: "The data node's state as the manager sees it: 1 for the state it is in, 0 for the others.",
    labelNames: ["node", "state"],
    registers: [registry],
    collect() {
      this.reset();
      for (const member of members.members()) for (const state of ["up", "suspect", "down"]) this.set({ node: member.name, state }, member.state === state ? 1 : 0);
    },
  });
  new Gauge({
    name: "drce_cluster_node_load_percent",
    help: "The data node's one-minute load average at its latest report, percent of its CPUs.",
    labelNames: ["node"],
    registers: [registry],
    collect() {
      this.reset();
      for (const member of members.members()) this.set({ node: member.name }, member.usage.loadavg);
    },
  });
  new Gauge({
    name: "drce_cluster_node_free_slots",
    help: "The data node's free execution slots at its latest report.",
    labelNames: ["node"],
    registers: [registry],
    collect() {
      this.reset();
      for (const member of members.members()) this.set({ node: member.name }, member.freeSlots);
    },
  });
  new Gauge({
    name: "drce_cluster_tasks_placed",
    help: "Tasks the manager placed on the data node (kept across manager restarts).",
    labelNames: ["node"],
    registers: [registry],
    collect() {
      this.reset();
      for (const member of members.members()) this.set({ node: member.name }, member.tasksPlaced);
    },
  });
  const dispatches = new Counter({ name: "drce_cluster_dispatches_total", help: "Tasks forwarded to the data node and accepted by it, since the manager started.", labelNames: ["node"], registers: [registry] });
  const latency = new Histogram({
    name: "drce_cluster_dispatch_seconds",
    help: "Time from forwarding a task to the data node's acceptance (its reply to an async submission, its first event of a run).",
    labelNames: ["node"],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry],
  });
  return {
    dispatched(node, ms) {
      dispatches.inc({ node });
      latency.observe({ node }, ms / 1000);
    },
  };
}
