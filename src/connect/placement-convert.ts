import { create } from "@bufbuild/protobuf";
import { NodeResultSchema, NodeRunStatus as ProtoNodeRunStatus, type NodeResult as ProtoNodeResult, type TaskResult } from "../../gen/drce/v1/task_pb.js";
import type { NodeResult, NodeRunStatus } from "../domain/placement.js";
import type { TaskView } from "../domain/view.js";

/** The proto value of each node run status. */
const nodeRunStatusToProto: Readonly<Record<NodeRunStatus, ProtoNodeRunStatus>> = {
  running: ProtoNodeRunStatus.RUNNING,
  finished: ProtoNodeRunStatus.FINISHED,
  failed: ProtoNodeRunStatus.FAILED,
  "timed-out": ProtoNodeRunStatus.TIMED_OUT,
  unreachable: ProtoNodeRunStatus.UNREACHABLE,
  "not-started": ProtoNodeRunStatus.NOT_STARTED,
};

/** Converts one node's part of a fanned-out task; `result` converts the node's view with that node's identity. */
export function nodeResultToProto(item: NodeResult, result: (view: TaskView) => TaskResult): ProtoNodeResult {
  return create(NodeResultSchema, {
    node: item.node,
    status: nodeRunStatusToProto[item.status],
    ...(item.view === undefined ? {} : { result: result(item.view) }),
    errorCode: item.errorCode,
    errorMessage: item.errorMessage,
  });
}
