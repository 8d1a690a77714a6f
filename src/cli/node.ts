import type { Client } from "@connectrpc/connect";
import {
  GetHostFactsResponseSchema,
  GetNodeInfoResponseSchema,
  GetNodeStatsResponseSchema,
  GetResourceUsageResponseSchema,
  ListTaskInfosResponseSchema,
  NodeService,
  WatchResourceReportsResponseSchema,
  type HostFacts,
  type NodeInfo,
  type NodeStats,
  type ResourceReport,
  type ResourceUsage,
  type StatFigure,
} from "../../gen/drce/v1/node_service_pb.js";
import { createServiceClient } from "./client.js";
import { explainFailure } from "./transport-errors.js";
import { clientOptionsFrom, noPositionals, showUsage } from "./common.js";
import { UsageError } from "./errors.js";
import type { CliIo } from "./io.js";
import { parseStateFilter } from "./ls.js";
import { commonOptions, parseOptions, type CommonValues } from "./options.js";
import { formatDuration, formatTable, formatTime, writeJson, writeLines } from "./output.js";
import { allStateNames } from "./states.js";

/** Usage of `drce node`. */
export const nodeUsage = `usage: drce node SUBCOMMAND [--server URL] [--json]

Node administration (NodeService):
  info                 name, host, version, start time, uptime and every limit the node enforces
  host                 the host's static facts: OS and version, kernel, architecture, CPU model
                       and count, memory, swap, file systems, drce and Node.js versions
  usage                host load from the node's latest sample: CPU, IOWAIT, VRAM, RRAM, DISK,
                       PROCESSES, THREADS, LOADAVG (percent) and the balancing string
  stats                task statistics since the node started, per mode (sync, async): tasks,
                       failures, and min/avg/max of time, stdin and stdout sizes, CPU, memory
                       and tasks per minute
  tasks [--state S]    the info of every task: ID<TAB>MODIFIED<TAB>INFO (its status as JSON)
                       S is one of ${allStateNames().join(", ")}
  reports [-f] [--after SEQ]
                       resource reports kept by the node, one line each:
                       SEQ<TAB>TIME<TAB>cpu,iowait,vram,rram,disk,processes,threads,loadavg
                       -f, --follow      go on with new reports until interrupted
                       --after SEQ       start after report SEQ (default: every kept report)

--json prints the reply messages as JSON, one per line.

Exit status: 0; 2 usage error; 125 node error; 130 when interrupted.`;

/** The generated NodeService client. */
export type NodeClient = Client<typeof NodeService>;

/** Runs body with a NodeService client for the node the common options name, then closes it. */
export async function withNodeClient<T>(values: CommonValues, io: CliIo, body: (client: NodeClient) => Promise<T>): Promise<T> {
  const options = await clientOptionsFrom(values, io);
  const handle = createServiceClient(NodeService, options);
  try {
    return await body(handle.client);
  } catch (error) {
    throw explainFailure(error, { server: options.server, hasToken: options.token !== "", transport: handle.transport() });
  } finally {
    handle.close();
  }
}

/** A figure as the CLI shows it: whole numbers as they are, others with two decimals. */
function figure(value: number | bigint): string {
  const n = Number(value);
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

/** The `name value` rows of `drce node info`. */
export function infoRows(info: NodeInfo): string[][] {
  const l = info.limits;
  const rows: string[][] = [
    ["name", info.name],
    ["host", info.host],
    ["port", String(info.port)],
    ["version", info.version],
    ["role", info.role],
    ["started", formatTime(info.startedAtMs)],
    ["uptime", formatDuration(info.uptimeMs)],
    ["zmq", info.zmqEndpoint || "-"],
    ["admin-zmq", info.adminZmqEndpoint || "-"],
  ];
  if (l !== undefined) {
    rows.push(
      ["max-concurrent", String(l.maxConcurrent)],
      ["max-queue", String(l.maxQueue)],
      ["max-output-bytes", String(l.maxOutputBytes)],
      ["max-task-ms", String(l.maxTaskMs)],
      ["max-request-bytes", String(l.maxRequestBytes)],
      ["max-file-bytes", String(l.maxFileBytes)],
      ["sample-interval-ms", String(l.sampleIntervalMs)],
      ["event-history", String(l.eventHistory)],
      ["report-history", String(l.reportHistory)],
      ["allow-dir", l.allowedDirs.join(",") || "-"],
      ["allow-env", l.allowedEnv.join(",") || "-"],
      ["token-required", l.tokenRequired ? "yes" : "no"],
    );
  }
  return rows;
}

/** The `name value` rows of `drce node host`: one row per fact, one `disk` row per file system. */
export function hostRows(facts: HostFacts): string[][] {
  const text = (value: string): string => value || "-";
  return [
    ["hostname", text(facts.hostname)],
    ["os", text([facts.osName, facts.osRelease, facts.osCodename === "" ? "" : `(${facts.osCodename})`].filter((part) => part !== "").join(" "))],
    ["platform", text(facts.platform)],
    ["kernel", text(facts.kernel)],
    ["arch", text(facts.arch)],
    ["cpu", text([facts.cpuManufacturer, facts.cpuModel].filter((part) => part !== "").join(" "))],
    ["cpu-count", String(facts.cpuCount)],
    ["cpu-cores", String(facts.cpuPhysicalCores)],
    ["cpu-mhz", facts.cpuSpeedMhz === 0 ? "-" : String(facts.cpuSpeedMhz)],
    ["memory-bytes", String(facts.memoryBytes)],
    ["swap-bytes", String(facts.swapBytes)],
    ...facts.disks.map((d) => ["disk", `${d.mount} ${d.type || "-"} ${d.sizeBytes} ${d.device || "-"}`]),
    ["drce-version", text(facts.drceVersion)],
    ["node-version", text(facts.nodeVersion)],
  ];
}

/** The `NAME value` rows of `drce node usage`. */
export function usageRows(usage: ResourceUsage | undefined, balancing: string, sampledAtMs: bigint): string[][] {
  const u = usage;
  return [
    ["CPU", figure(u?.cpu ?? 0)],
    ["IOWAIT", figure(u?.iowait ?? 0)],
    ["VRAM", figure(u?.vram ?? 0)],
    ["RRAM", figure(u?.rram ?? 0)],
    ["DISK", figure(u?.disk ?? 0)],
    ["PROCESSES", figure(u?.processes ?? 0)],
    ["THREADS", figure(u?.threads ?? 0)],
    ["LOADAVG", figure(u?.loadavg ?? 0)],
    ["balancing", balancing],
    ["sampled", formatTime(sampledAtMs)],
  ];
}

/** The lines of `drce node stats`: a table of counts, a blank line, a table of figures. */
export function statsLines(stats: NodeStats): string[] {
  const modes = [
    ["sync", stats.sync],
    ["async", stats.async],
  ] as const;
  const counts = [["MODE", "TASKS", "FAILED"], ...modes.map(([name, m]) => [name, String(m?.tasks ?? 0n), String(m?.failed ?? 0n)])];
  const figures: string[][] = [["FIGURE", "MODE", "MIN", "AVG", "MAX", "COUNT"]];
  const names = [
    ["time-ms", "timeMs"],
    ["stdin-bytes", "inputBytes"],
    ["stdout-bytes", "outputBytes"],
    ["cpu-percent", "cpuPercent"],
    ["memory-bytes", "memoryBytes"],
    ["per-minute", "perMinute"],
  ] as const;
  for (const [label, key] of names) {
    for (const [name, m] of modes) {
      const f: StatFigure | undefined = m?.[key];
      figures.push([label, name, figure(f?.min ?? 0), figure(f?.avg ?? 0), figure(f?.max ?? 0), String(f?.count ?? 0n)]);
    }
  }
  return [`since ${formatTime(stats.startedAtMs)}`, ...formatTable(counts), "", ...formatTable(figures)];
}

/** One `drce node reports` line. */
export function reportLine(report: ResourceReport): string {
  return `${report.seq}\t${formatTime(report.timeUnixMs)}\t${report.balancing}`;
}

const subcommands = ["info", "host", "usage", "stats", "tasks", "reports"] as const;

const nodeOptions = {
  ...commonOptions,
  state: { type: "string", multiple: true },
  follow: { type: "boolean", short: "f" },
  after: { type: "string" },
} as const;

/** `drce node SUBCOMMAND`: the NodeService RPCs. */
export async function nodeCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseOptions(argv, nodeOptions);
  if (values.help === true) return showUsage(io, nodeUsage);
  const [sub, ...rest] = positionals;
  if (sub === undefined) throw new UsageError(`a subcommand is required: ${subcommands.join(", ")}`);
  if (!(subcommands as readonly string[]).includes(sub)) throw new UsageError(`unknown subcommand ${JSON.stringify(sub)} (one of ${subcommands.join(", ")})`);
  noPositionals(rest);
  if (sub !== "tasks" && values.state !== undefined) throw new UsageError("--state belongs to drce node tasks");
  if (sub !== "reports" && (values.follow !== undefined || values.after !== undefined)) throw new UsageError("-f and --after belong to drce node reports");
  if (values.after !== undefined && !/^\d+$/.test(values.after)) throw new UsageError(`--after ${values.after}: expected a sequence number`);
  const states = parseStateFilter(values.state ?? []);
  const json = values.json === true;

  return withNodeClient(values, io, async (client) => {
    switch (sub) {
      case "info": {
        const response = await client.getNodeInfo({});
        if (json) await writeJson(io.stdout, GetNodeInfoResponseSchema, response);
        else if (response.info !== undefined) await writeLines(io.stdout, formatTable(infoRows(response.info)));
        break;
      }
      case "host": {
        const response = await client.getHostFacts({});
        if (json) await writeJson(io.stdout, GetHostFactsResponseSchema, response);
        else if (response.facts !== undefined) await writeLines(io.stdout, formatTable(hostRows(response.facts)));
        break;
      }
      case "usage": {
        const response = await client.getResourceUsage({});
        if (json) await writeJson(io.stdout, GetResourceUsageResponseSchema, response);
        else await writeLines(io.stdout, formatTable(usageRows(response.usage, response.balancing, response.sampledAtMs)));
        break;
      }
      case "stats": {
        const response = await client.getNodeStats({});
        if (json) await writeJson(io.stdout, GetNodeStatsResponseSchema, response);
        else if (response.stats !== undefined) await writeLines(io.stdout, statsLines(response.stats));
        break;
      }
      case "tasks": {
        const response = await client.listTaskInfos({ states });
        if (json) await writeJson(io.stdout, ListTaskInfosResponseSchema, response);
        else await writeLines(io.stdout, response.tasks.map((t) => `${t.id}\t${formatTime(t.modifiedAtMs)}\t${t.info}`));
        break;
      }
      case "reports": {
        const afterSeq = BigInt(values.after ?? 0);
        const request = { afterSeq, fromStart: afterSeq === 0n, stopAtEnd: values.follow !== true };
        for await (const message of client.watchResourceReports(request)) {
          if (json) await writeJson(io.stdout, WatchResourceReportsResponseSchema, message);
          else if (message.report !== undefined) await writeLines(io.stdout, [reportLine(message.report)]);
        }
        break;
      }
    }
    return 0;
  });
}
