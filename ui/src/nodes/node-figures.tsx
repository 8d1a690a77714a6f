import type { HostFacts, NodeStats, ResourceUsage, TaskModeStats } from "../../../gen/drce/v1/node_service_pb.js";
import { usageFigures } from "./usage-history.js";

/** The eight load figures of a node, percent, as a list of names and values. */
export function UsageFigures(props: { readonly usage: ResourceUsage | undefined }) {
  return (
    <dl class="facts usage-figures">
      {usageFigures.map((figure) => (
        <>
          <dt>{figure.title}</dt>
          <dd data-figure={figure.key}>{props.usage === undefined ? "—" : `${props.usage[figure.key].toFixed(1)}%`}</dd>
        </>
      ))}
    </dl>
  );
}

/** A byte count in binary units (KiB, MiB, GiB), as people read memory and disk sizes. */
export function bytesText(bytes: bigint | number): string {
  let value = Number(bytes);
  for (const unit of ["B", "KiB", "MiB", "GiB", "TiB"]) {
    if (value < 1024 || unit === "TiB") return unit === "B" ? `${value} B` : `${value.toFixed(1)} ${unit}`;
    value /= 1024;
  }
  return `${value} B`;
}

/** The host a node runs on: name, system, processor and memory, and its disks. */
export function HostFactsList(props: { readonly facts: HostFacts | undefined }) {
  const facts = props.facts;
  if (facts === undefined || facts.hostname === "") return <p class="notice">No host facts yet.</p>;
  return (
    <dl class="facts host-facts">
      <dt>Host</dt>
      <dd>{facts.hostname}</dd>
      <dt>System</dt>
      <dd>
        {[facts.osName, facts.osRelease, facts.osCodename].filter((part) => part !== "").join(" ")} ({facts.platform}, {facts.arch}), kernel {facts.kernel}
      </dd>
      <dt>Processor</dt>
      <dd>
        {facts.cpuCount} × {[facts.cpuManufacturer, facts.cpuModel].filter((part) => part !== "").join(" ")}
        {facts.cpuSpeedMhz > 0 ? `, ${facts.cpuSpeedMhz} MHz` : ""}
      </dd>
      <dt>Memory</dt>
      <dd>
        {bytesText(facts.memoryBytes)}
        {facts.swapBytes > 0n ? `, swap ${bytesText(facts.swapBytes)}` : ""}
      </dd>
      {facts.disks.length > 0 && (
        <>
          <dt>Disks</dt>
          <dd>{facts.disks.map((disk) => `${disk.mount} ${bytesText(disk.sizeBytes)}`).join(", ")}</dd>
        </>
      )}
      <dt>Versions</dt>
      <dd>
        drce {facts.drceVersion}, Node.js {facts.nodeVersion}
      </dd>
    </dl>
  );
}

function modeRow(title: string, stats: TaskModeStats | undefined) {
  const figure = (value: number | undefined): string => (value === undefined ? "—" : Math.round(value).toString());
  return (
    <tr>
      <th scope="row">{title}</th>
      <td>{stats?.tasks.toString() ?? "0"}</td>
      <td>{stats?.failed.toString() ?? "0"}</td>
      <td>{figure(stats?.timeMs?.avg)}</td>
      <td>{figure(stats?.timeMs?.max)}</td>
      <td>{figure(stats?.perMinute?.avg)}</td>
    </tr>
  );
}

/** A node's task statistics since it started, sync and async: tasks, failures, time and rate. */
export function NodeStatsTable(props: { readonly stats: NodeStats | undefined }) {
  // At a phone's width the table scrolls in its own box rather than widening the page.
  return (
    <div class="node-stats-box">
      <table class="list node-stats" aria-label="Task statistics">
        <thead>
          <tr>
            <th scope="col">Mode</th>
            <th scope="col">Tasks</th>
            <th scope="col">Failed</th>
            <th scope="col">Avg ms</th>
            <th scope="col">Max ms</th>
            <th scope="col">Per min</th>
          </tr>
        </thead>
        <tbody>
          {modeRow("sync", props.stats?.sync)}
          {modeRow("async", props.stats?.async)}
        </tbody>
      </table>
    </div>
  );
}
