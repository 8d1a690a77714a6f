import { useEffect, useState } from "preact/hooks";
import { ClusterNodeState, type ClusterNode, type HostFacts, type NodeStats, type ResourceUsage } from "../../../gen/drce/v1/node_service_pb.js";
import { errorText, useApi, useNode } from "../api.js";
import { HostFactsList, NodeStatsTable, UsageFigures } from "../nodes/node-figures.js";
import { UsageChart, UsageKey } from "../nodes/usage-chart.js";
import { usagePoint, withPoint, type UsagePoint } from "../nodes/usage-history.js";
import "../nodes/nodes.css";

/** How often the node list is read again: membership has no stream, and heartbeats come about once a second. */
const refreshMs = 2000;

/** The state words of ClusterNodeState. */
function stateName(state: ClusterNodeState): string {
  if (state === ClusterNodeState.UP) return "up";
  if (state === ClusterNodeState.SUSPECT) return "suspect";
  if (state === ClusterNodeState.DOWN) return "down";
  return "unknown";
}

/**
 * The Nodes view: the node that served the page (its load history from
 * `WatchResourceReports`, its task statistics and host), then on a manager every node it
 * knows (`ListNodes`): state, the eight load figures and their history, free slots, labels
 * and host facts, read again every two seconds. A data node lists itself.
 */
export function NodesView() {
  const api = useApi();
  const self = useNode();
  const manager = self.role === "manager";
  const [nodes, setNodes] = useState<readonly ClusterNode[] | undefined>(undefined);
  const [histories, setHistories] = useState<ReadonlyMap<string, readonly UsagePoint[]>>(new Map());
  const [ownHistory, setOwnHistory] = useState<readonly UsagePoint[]>([]);
  const [ownUsage, setOwnUsage] = useState<ResourceUsage | undefined>(undefined);
  const [stats, setStats] = useState<NodeStats | undefined>(undefined);
  const [facts, setFacts] = useState<HostFacts | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);

  useEffect(() => {
    const stop = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const refresh = async (): Promise<void> => {
      try {
        const [listed, read] = await Promise.all([api.nodes.listNodes({}, { signal: stop.signal }), api.nodes.getNodeStats({}, { signal: stop.signal })]);
        setNodes(listed.nodes);
        setStats(read.stats);
        setHistories((current) => {
          const next = new Map<string, readonly UsagePoint[]>();
          for (const node of listed.nodes) next.set(node.name, withPoint(current.get(node.name) ?? [], usagePoint(Number(node.lastSeenMs), node.usage)));
          return next;
        });
        setError(undefined);
      } catch (failure) {
        if (!stop.signal.aborted) setError(errorText(failure));
      }
      if (!stop.signal.aborted) timer = setTimeout(() => void refresh(), refreshMs);
    };
    void refresh();
    api.nodes.getHostFacts({}, { signal: stop.signal }).then(
      (reply) => setFacts(reply.facts),
      (failure: unknown) => {
        if (!stop.signal.aborted) setError(errorText(failure));
      },
    );
    // The node's own history: the reports it kept, then each new one as it is made.
    (async () => {
      for await (const message of api.nodes.watchResourceReports({ fromStart: true }, { signal: stop.signal })) {
        const report = message.report;
        if (report === undefined) continue;
        setOwnHistory((current) => withPoint(current, usagePoint(Number(report.timeUnixMs), report.usage)));
        setOwnUsage(report.usage);
      }
    })().catch((failure: unknown) => {
      if (!stop.signal.aborted) setError(errorText(failure));
    });
    return () => {
      stop.abort();
      clearTimeout(timer);
    };
  }, []);

  const own = manager ? undefined : nodes?.find((node) => node.name === self.name);
  return (
    <section aria-labelledby="nodes-title" class="nodes-view">
      <h1 id="nodes-title">Nodes</h1>
      {error !== undefined && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <article class="card node-card self-card" aria-labelledby="node-self-title" data-node={self.name}>
        <h2 id="node-self-title">
          {manager ? "Manager" : "This node"} <span class="mono">{self.name}</span>
          {own !== undefined && (
            <>
              {" "}
              <span class={`badge node-${stateName(own.state)}`}>{stateName(own.state)}</span>
            </>
          )}
        </h2>
        <div class="node-body">
          <div>
            <UsageChart points={ownHistory} label={`load history of ${self.name}`} />
            <UsageKey />
          </div>
          <div>
            <UsageFigures usage={ownUsage ?? own?.usage} />
            {own !== undefined && <Slots node={own} />}
          </div>
        </div>
        <h3>Tasks since the node started</h3>
        <NodeStatsTable stats={stats} />
        <h3>Host</h3>
        <HostFactsList facts={facts} />
      </article>
      {manager && (
        <>
          <h2 class="nodes-count" role="status">
            {nodes === undefined ? "Reading the nodes…" : `${nodes.length} ${nodes.length === 1 ? "node" : "nodes"}, ${nodes.filter((node) => node.state === ClusterNodeState.UP).length} up`}
          </h2>
          <ul class="node-list" aria-label="Nodes of the cluster">
            {(nodes ?? []).map((node) => (
              <li key={node.name}>
                <ClusterNodeCard node={node} history={histories.get(node.name) ?? []} />
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

function Slots(props: { readonly node: ClusterNode }) {
  const { node } = props;
  return (
    <dl class="facts node-slots">
      <dt>Free slots</dt>
      <dd data-fact="free-slots">{node.freeSlots}</dd>
      <dt>Running</dt>
      <dd>{node.running}</dd>
      {node.tasksPlaced > 0n && (
        <>
          <dt>Tasks placed</dt>
          <dd>{node.tasksPlaced.toString()}</dd>
        </>
      )}
      <dt>Labels</dt>
      <dd class="node-labels">
        {Object.keys(node.labels).length === 0
          ? "none"
          : Object.entries(node.labels)
              .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
              .map(([key, value]) => (
              <span class="badge label">
                {key}={value}
              </span>
            ))}
      </dd>
    </dl>
  );
}

function ClusterNodeCard(props: { readonly node: ClusterNode; readonly history: readonly UsagePoint[] }) {
  const { node } = props;
  const state = stateName(node.state);
  const seen = node.lastSeenMs > 0n ? new Date(Number(node.lastSeenMs)).toLocaleTimeString() : "never";
  return (
    <article class="card node-card" aria-labelledby={`node-${node.name}`} data-node={node.name} data-state={state}>
      <h2 id={`node-${node.name}`}>
        <span class="mono">{node.name}</span> <span class={`badge node-${state}`}>{state}</span>
        <span class="node-seen">last seen {seen}</span>
      </h2>
      <p class="mono node-url">{node.url}</p>
      <div class="node-body">
        <div>
          <UsageChart points={props.history} label={`load history of ${node.name}`} />
        </div>
        <div>
          <UsageFigures usage={node.usage} />
          <Slots node={node} />
        </div>
      </div>
      <details>
        <summary>Host</summary>
        <HostFactsList facts={node.facts} />
      </details>
    </article>
  );
}
