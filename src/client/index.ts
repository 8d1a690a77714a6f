/**
 * The drce client library (`import ... from "drce/client"`): the generated service
 * descriptors and messages of the drce.v1 contract, and a small typed layer over them
 * ({@link createDrceClient}) for running, submitting, waiting for, following and fetching
 * tasks, with failures as {@link DrceCallError}s that carry the legacy error code.
 *
 * @packageDocumentation
 */
export { createDrceClient, defaultConnectTimeoutMs } from "./drce-client.js";
export type { CallOptions, DrceClient, DrceClientOptions, DrceTlsOptions, FetchedOutput, FetchOutputOptions, FollowOptions, Submitted, TaskSpecInit } from "./drce-client.js";
export { callErrorFrom, DrceCallError, isCallError } from "./drce-call-error.js";
export type { AcceptedEvent, FollowEvent, GapEvent, NodeResultEvent, OutputEvent, ResultEvent, RunEvent, StreamName } from "./task-events.js";
export { createServiceClient, receiveWindowBytes } from "./service-client.js";
export type { ClientTls, ServiceClient, ServiceClientOptions, TransportState } from "./service-client.js";
export { NoAnswerError } from "./no-answer-error.js";
export type { ErrorKind } from "../domain/errors.js";
export { Code, ConnectError } from "@connectrpc/connect";
export { create, fromJson, toJson } from "@bufbuild/protobuf";
export * from "../../gen/drce/v1/task_pb.js";
export * from "../../gen/drce/v1/task_service_pb.js";
export * from "../../gen/drce/v1/node_service_pb.js";
export * from "../../gen/drce/v1/cluster_service_pb.js";
