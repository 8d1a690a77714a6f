import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  GetHostFactsResponseSchema,
  GetNodeInfoResponseSchema,
  GetNodeStatsResponseSchema,
  GetResourceUsageResponseSchema,
  ClusterNodeSchema,
  type ClusterNode,
  ClusterNodeState,
  ListNodesResponseSchema,
  ListTaskInfosResponseSchema,
  NodeService,
  WatchResourceReportsResponseSchema,
} from "../../gen/drce/v1/node_service_pb.js";
import type { NodeAdmin } from "../core/node-admin.js";
import { TaskState } from "../domain/states.js";
import { fromProtoState } from "./convert.js";
import { toConnectError } from "./errors.js";
import { hostFactsToProto, hostToProto, nodeInfoToProto, nodeStatsToProto, reportToProto, taskInfoToProto, usageToProto } from "./node-convert.js";

/** Options of {@link createNodeHandler}. */
export interface NodeHandlerOptions {
  readonly admin: NodeAdmin;
  /** On a manager: the cluster's nodes carrying every given label, in name order; absent on a data node, which lists itself. */
  readonly listNodes?: ((labels: Readonly<Record<string, string>>) => readonly ClusterNode[]) | undefined;
  /** A data node's own labels (--label), in its answer to ListNodes. */
  readonly labels?: Readonly<Record<string, string>>;
}

/** The Connect implementation of NodeService: thin translation over the node administration. */
export function createNodeHandler({ admin, listNodes, labels = {} }: NodeHandlerOptions): ServiceImpl<typeof NodeService> {
  return {
    getNodeInfo: () => create(GetNodeInfoResponseSchema, { info: nodeInfoToProto(admin.info()) }),
    getNodeStats: () => create(GetNodeStatsResponseSchema, { stats: nodeStatsToProto(admin.stats()) }),
    getResourceUsage: () => {
      const reading = admin.usage();
      return create(GetResourceUsageResponseSchema, {
        usage: usageToProto(reading.usage),
        balancing: reading.balancing,
        sampledAtMs: BigInt(reading.snapshot.sampledAt),
        host: hostToProto(reading.snapshot),
      });
    },
    getHostFacts: async () => {
      try {
        return create(GetHostFactsResponseSchema, { facts: hostFactsToProto(await admin.hostFacts(), admin.info().version) });
      } catch (error) {
        throw toConnectError(error);
      }
    },
    listTaskInfos: async (request) => {
      try {
        const wanted = new Set(request.states.map(fromProtoState));
        const infos = await admin.taskInfos((s) => wanted.size === 0 || wanted.has(s.state));
        return create(ListTaskInfosResponseSchema, { tasks: infos.map(taskInfoToProto) });
      } catch (error) {
        throw toConnectError(error);
      }
    },
    listNodes: async (request) => {
      if (listNodes !== undefined) return create(ListNodesResponseSchema, { nodes: [...listNodes({ ...request.labels })] });
      // A data node answers for itself only: up, as it is answering.
      try {
        const info = admin.info();
        const reading = admin.usage();
        const running = admin.tasks().filter((s) => s.state === TaskState.InProgress).length;
        const node = create(ClusterNodeSchema, {
          name: info.name,
          url: `http://${info.host.includes(":") ? `[${info.host}]` : info.host}:${info.port}`,
          state: ClusterNodeState.UP,
          labels: { ...labels },
          usage: usageToProto(reading.usage),
          balancing: reading.balancing,
          freeSlots: Math.max(0, info.limits.maxConcurrent - running),
          running,
          facts: hostFactsToProto(await admin.hostFacts(), info.version),
          lastSeenMs: BigInt(Date.now()),
        });
        return create(ListNodesResponseSchema, { nodes: [node] });
      } catch (error) {
        throw toConnectError(error);
      }
    },
    async *watchResourceReports(request, context) {
      const after = request.afterSeq === 0n && request.fromStart ? -1 : Number(request.afterSeq);
      for await (const report of admin.watchReports(after, request.stopAtEnd, context.signal)) {
        yield create(WatchResourceReportsResponseSchema, { report: reportToProto(report) });
      }
    },
  };
}
