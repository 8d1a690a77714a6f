import { ClusterNodeSchema, ClusterNodeState, type ClusterNode } from "../../gen/drce/v1/node_service_pb.js";
import { noPositionals, showUsage } from "./common.js";
import type { CliIo } from "./io.js";
import { withNodeClient } from "./node.js";
import { commonOptions, parseOptions } from "./options.js";
import { formatTable, writeJson, writeLines } from "./output.js";
import { parseTargetOption } from "./placement-options.js";

/** Usage of `drce nodes`. */
export const nodesUsage = `usage: drce nodes [--target K=V[,K=V]] [--server URL] [--json]

Lists the data nodes the server answers for (NodeService.ListNodes): every node of
the cluster through a manager, the node itself on a data node. One row per node,
in name order:
  NAME STATE LOAD FREE RUNNING LABELS KERNEL CPUS MEMORY OS
STATE is up, suspect or down; LOAD the one-minute load average in percent of the
node's CPUs; FREE its free task slots; the rest its labels and host facts.
      --target K=V[,K=V]   only nodes carrying every one of these labels (repeatable)
      --json               one ClusterNode message per line, as JSON

Exit status: 0 (also when no node matches); 2 usage error; 125 node error.`;

const nodesOptions = { ...commonOptions, target: { type: "string", multiple: true } } as const;

/** The word the CLI shows for each node state. */
const stateNames: Readonly<Record<ClusterNodeState, string>> = {
  [ClusterNodeState.UNSPECIFIED]: "unknown",
  [ClusterNodeState.UP]: "up",
  [ClusterNodeState.SUSPECT]: "suspect",
  [ClusterNodeState.DOWN]: "down",
};

/** `drce nodes`: ListNodes. */
export async function nodesCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseOptions(argv, nodesOptions);
  if (values.help === true) return showUsage(io, nodesUsage);
  noPositionals(positionals);
  const labels: Record<string, string> = {};
  for (const text of values.target ?? []) Object.assign(labels, parseTargetOption(text));
  return withNodeClient(values, io, async (client) => {
    const { nodes } = await client.listNodes({ labels });
    if (values.json === true) {
      for (const node of nodes) await writeJson(io.stdout, ClusterNodeSchema, node);
    } else {
      await writeLines(io.stdout, formatTable(nodeRows(nodes)));
      if (nodes.length === 0) await writeLines(io.stderr, [Object.keys(labels).length === 0 ? "drce: no data node is known" : "drce: no node carries these labels"]);
    }
    return 0;
  });
}

/** The table of `drce nodes`: a header row, then one row per node. */
export function nodeRows(nodes: readonly ClusterNode[]): string[][] {
  const header = ["NAME", "STATE", "LOAD", "FREE", "RUNNING", "LABELS", "KERNEL", "CPUS", "MEMORY", "OS"];
  return [
    header,
    ...nodes.map((node) => {
      const facts = node.facts;
      const labels = Object.keys(node.labels)
        .sort()
        .map((key) => `${key}=${node.labels[key] ?? ""}`)
        .join(",");
      const os = [facts?.osName ?? "", facts?.osRelease ?? ""].filter((part) => part !== "").join(" ");
      return [
        node.name,
        stateNames[node.state] ?? `state-${node.state}`,
        node.usage === undefined ? "-" : percent(node.usage.loadavg),
        String(node.freeSlots),
        String(node.running),
        labels || "-",
        facts?.kernel || "-",
        facts === undefined || facts.cpuCount === 0 ? "-" : String(facts.cpuCount),
        facts === undefined || facts.memoryBytes === 0n ? "-" : bytes(facts.memoryBytes),
        // Last, as the one column whose words may hold spaces ("Debian GNU/Linux 12").
        os || "-",
      ];
    }),
  ];
}

/** A percentage with at most one decimal ("12.5%", "0%"). */
function percent(value: number): string {
  return `${Number.isInteger(value) ? value : value.toFixed(1)}%`;
}

/** A size in binary units, one decimal ("7.8GiB", "512MiB"). */
function bytes(value: bigint): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let size = Number(value);
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) (size /= 1024), unit++;
  return `${unit === 0 || Number.isInteger(size) ? size : size.toFixed(1)}${units[unit]}`;
}
