import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { ClusterService, HeartbeatResponseSchema, RegisterNodeResponseSchema, type NodeReport } from "../../gen/drce/v1/cluster_service_pb.js";
import { usageFromProto, type MemberReport, type Membership } from "../cluster/membership.js";
import { isValidTaskId } from "../domain/validate.js";
import { toConnectError } from "./errors.js";

/** Options of {@link createClusterHandler}. */
export interface ClusterHandlerOptions {
  /** The manager's node list; absent on a data node, which answers every call FailedPrecondition. */
  readonly membership?: Membership | undefined;
  /** The manager's own name, told to joining nodes. */
  readonly manager: string;
  /** Silence after which the manager takes a node for down, ms, told to joining nodes. */
  readonly nodeTimeoutMs: number;
}

/** A node report as the node list keeps it. */
function reportFromProto(report: NodeReport | undefined): MemberReport | undefined {
  if (report === undefined) return undefined;
  return { usage: usageFromProto(report.usage), balancing: report.balancing, freeSlots: report.freeSlots, running: report.running };
}

/** Refuses what is not an http(s) base URL with no path. */
function checkUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConnectError(`url ${JSON.stringify(url)} is not a URL (e.g. http://10.0.0.5:8470)`, Code.InvalidArgument);
  }
  if ((parsed.protocol !== "http:" && parsed.protocol !== "https:") || parsed.pathname !== "/") throw new ConnectError(`url ${url} must be an http:// or https:// base URL with no path`, Code.InvalidArgument);
}

/**
 * The Connect implementation of ClusterService: on a manager, joining nodes register and send
 * heartbeats into its node list; on a data node every call is FailedPrecondition (it has no
 * nodes of its own to take).
 */
export function createClusterHandler(options: ClusterHandlerOptions): ServiceImpl<typeof ClusterService> {
  const { membership } = options;
  const manager = (): NonNullable<ClusterHandlerOptions["membership"]> => {
    if (membership === undefined) throw new ConnectError("this is a data node, not a manager: join a node to a manager started with --role manager", Code.FailedPrecondition);
    return membership;
  };
  return {
    async registerNode(request) {
      const members = manager();
      // A node name is shown in results and prefixes output lines: the task id alphabet keeps it printable.
      if (!isValidTaskId(request.name)) throw new ConnectError(`name ${JSON.stringify(request.name)} must be 1-128 letters, digits, '.', '_' or '-'`, Code.InvalidArgument);
      checkUrl(request.url);
      try {
        await members.register({ name: request.name, url: request.url.replace(/\/$/, ""), labels: { ...request.labels }, facts: request.facts, report: reportFromProto(request.report) });
      } catch (error) {
        throw toConnectError(error);
      }
      return create(RegisterNodeResponseSchema, { manager: options.manager, nodeTimeoutMs: options.nodeTimeoutMs });
    },
    heartbeat(request) {
      const members = manager();
      try {
        members.heartbeat(request.name, reportFromProto(request.report));
      } catch (error) {
        throw toConnectError(error);
      }
      return create(HeartbeatResponseSchema, {});
    },
  };
}
