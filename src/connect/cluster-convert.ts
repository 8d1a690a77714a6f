import { create } from "@bufbuild/protobuf";
import { ClusterNodeSchema, ClusterNodeState, ResourceUsageSchema, type ClusterNode } from "../../gen/drce/v1/node_service_pb.js";
import type { Member, MemberState } from "../cluster/membership.js";

/** The proto value of each member state. */
const stateToProto: Readonly<Record<MemberState, ClusterNodeState>> = {
  up: ClusterNodeState.UP,
  suspect: ClusterNodeState.SUSPECT,
  down: ClusterNodeState.DOWN,
};

/** A data node as a manager's ListNodes reports it. */
export function memberToProto(member: Member): ClusterNode {
  return create(ClusterNodeSchema, {
    name: member.name,
    url: member.url,
    state: stateToProto[member.state],
    labels: { ...member.labels },
    usage: create(ResourceUsageSchema, { ...member.usage }),
    balancing: member.balancing,
    freeSlots: member.freeSlots,
    running: member.running,
    ...(member.facts === undefined ? {} : { facts: member.facts }),
    lastSeenMs: BigInt(member.lastSeen),
    joined: member.joined,
    tasksPlaced: BigInt(member.tasksPlaced),
  });
}
