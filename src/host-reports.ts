import type { Config } from "./config.js";
import { ResourceLog } from "./core/resource-log.js";
import { createHostSampler, type HostSampler } from "./executor/host-sampler.js";
import type { Logger } from "./logger.js";
import type { StartList } from "./start-list.js";

/** A node's host sampler and the resource reports it publishes. */
export interface HostReports {
  readonly host: HostSampler;
  readonly reports: ResourceLog;
}

/**
 * Starts sampling the host a node (data node or manager) runs on, publishing each sample as a
 * resource report, after a first sample so that the first answers have figures; records
 * "host sampler" in `starts`.
 */
export async function startHostReports(config: Pick<Config, "reportHistory" | "sampleIntervalMs" | "dataDir">, logger: Logger, starts: StartList): Promise<HostReports> {
  const reports = new ResourceLog(config.reportHistory);
  const host = createHostSampler({
    // At least 100 ms: every host sample reads the stat line of every process on the host.
    intervalMs: Math.max(config.sampleIntervalMs, 100),
    diskPath: config.dataDir,
    onError: (error) => logger.warn({ err: String(error) }, "host sample failed"),
    onSample: (snapshot) => reports.publish(snapshot),
  });
  await host.refresh();
  host.start();
  starts.started("host sampler", () => host.stop());
  return { host, reports };
}
