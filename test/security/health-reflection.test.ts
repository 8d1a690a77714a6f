import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection, ServerReflectionRequestSchema, type ServerReflectionRequest, type ServerReflectionResponse } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionAlpha, ServerReflectionRequestSchema as AlphaRequestSchema } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { startNode, until, type TestNode } from "../helpers/node.js";
import { clientFor } from "./clients.js";

const token = "reflect-t0ken";
let node: TestNode;
const closers: (() => void)[] = [];

beforeAll(async () => {
  node = await startNode({ token });
});
afterAll(async () => {
  for (const close of closers) close();
  await node.stop();
});

function client<S extends Parameters<typeof clientFor>[0]>(service: S, options: Parameters<typeof clientFor>[2] = {}) {
  const handle = clientFor(service, node.url, { protocol: "grpc", ...options });
  closers.push(handle.close);
  return handle.client;
}

/** Sends reflection requests over one bidirectional gRPC stream and collects the answers. */
async function reflect(requests: Partial<ServerReflectionRequest>[], options: { token?: string } = {}): Promise<ServerReflectionResponse[]> {
  const reflection = client(ServerReflection, options);
  async function* input() {
    for (const request of requests) yield create(ServerReflectionRequestSchema, request as never);
  }
  const out: ServerReflectionResponse[] = [];
  for await (const response of reflection.serverReflectionInfo(input())) out.push(response);
  return out;
}

function fileNames(response: ServerReflectionResponse | undefined): string[] {
  if (response?.messageResponse.case !== "fileDescriptorResponse") throw new Error(`not a file response: ${response?.messageResponse.case}`);
  return response.messageResponse.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name);
}

describe("gRPC health on a node with a token", () => {
  it("answers Check without the token: the node and TaskService are SERVING", async () => {
    const health = client(Health);
    expect((await health.check({ service: "" })).status).toBe(Status.SERVING);
    expect((await health.check({ service: "drce.v1.TaskService" })).status).toBe(Status.SERVING);
  });

  it("answers Check for an unknown service with NotFound", async () => {
    const error = await client(Health).check({ service: "no.such.Service" }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(error?.code).toBe(Code.NotFound);
  });

  it("lists every service's status", async () => {
    const { statuses } = await client(Health).list({});
    expect(Object.fromEntries(Object.entries(statuses).map(([name, response]) => [name, response.status]))).toEqual({ "": Status.SERVING, "drce.v1.NodeService": Status.SERVING, "drce.v1.TaskService": Status.SERVING });
  });

  it("Watch sends SERVING, then NOT_SERVING when the node shuts down, then ends", async () => {
    const watched = await startNode({ token });
    const handle = clientFor(Health, watched.url, { protocol: "grpc" });
    try {
      const seen: Status[] = [];
      const stream = (async () => {
        for await (const response of handle.client.watch({ service: "drce.v1.TaskService" })) seen.push(response.status);
      })();
      const unknown = handle.client.watch({ service: "no.such.Service" })[Symbol.asyncIterator]();
      expect((await unknown.next()).value?.status).toBe(Status.SERVICE_UNKNOWN);
      await unknown.return?.();
      await until(() => seen.length, (n) => n > 0, 20_000, "the first Watch message");
      expect(seen).toEqual([Status.SERVING]);
      await watched.stop();
      await stream.catch(() => undefined);
      expect(seen).toEqual([Status.SERVING, Status.NOT_SERVING]);
    } finally {
      handle.close();
    }
  });
});

describe("gRPC server reflection", () => {
  it("requires the token", async () => {
    const error = await reflect([{ messageRequest: { case: "listServices", value: "" } }]).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(error?.code).toBe(Code.Unauthenticated);
    const wrong = await reflect([{ messageRequest: { case: "listServices", value: "" } }], { token: "nope" }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(wrong?.code).toBe(Code.Unauthenticated);
  });

  it("lists the node's services", async () => {
    const [response] = await reflect([{ messageRequest: { case: "listServices", value: "*" } }], { token });
    expect(response?.messageResponse.case).toBe("listServicesResponse");
    const names = response?.messageResponse.case === "listServicesResponse" ? response.messageResponse.value.service.map((s) => s.name) : [];
    expect(names).toEqual(["drce.v1.NodeService", "drce.v1.TaskService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);
  });

  it("returns the file of a service, a method or a message with its dependencies, enough to rebuild TaskService", async () => {
    const responses = await reflect(
      [
        { messageRequest: { case: "fileContainingSymbol", value: "drce.v1.TaskService" } },
        { messageRequest: { case: "fileContainingSymbol", value: "drce.v1.TaskService.SubmitTask" } },
        { messageRequest: { case: "fileContainingSymbol", value: "drce.v1.TaskSpec" } },
        { messageRequest: { case: "fileByFilename", value: "grpc/health/v1/health.proto" } },
      ],
      { token },
    );
    expect(responses).toHaveLength(4);
    expect(fileNames(responses[0])).toEqual(["drce/v1/task_service.proto", "drce/v1/task.proto"]);
    expect(fileNames(responses[1])).toEqual(["drce/v1/task_service.proto", "drce/v1/task.proto"]);
    expect(fileNames(responses[2])).toEqual(["drce/v1/task.proto"]);
    expect(fileNames(responses[3])).toEqual(["grpc/health/v1/health.proto"]);

    // A client can build a registry from the bytes alone, as grpcurl does (the requested file
    // comes first, as grpc-go sends it; a FileDescriptorSet wants dependencies first).
    const first = responses[0]!.messageResponse;
    if (first.case !== "fileDescriptorResponse") throw new Error("unreachable");
    const set = create(FileDescriptorSetSchema, { file: [...first.value.fileDescriptorProto].reverse().map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes)) });
    const service = createFileRegistry(set).getService("drce.v1.TaskService");
    expect(service?.methods.map((m) => m.name)).toContain("SubmitTask");
    expect(service?.methods.find((m) => m.name === "RunTask")?.methodKind).toBe("server_streaming");
  });

  it("answers an unknown symbol or file with a NOT_FOUND error response, and the stream goes on", async () => {
    const responses = await reflect(
      [
        { messageRequest: { case: "fileContainingSymbol", value: "drce.v1.Nothing" } },
        { messageRequest: { case: "fileByFilename", value: "/etc/passwd" } },
        { messageRequest: { case: "listServices", value: "" } },
      ],
      { token },
    );
    expect(responses.map((r) => r.messageResponse.case)).toEqual(["errorResponse", "errorResponse", "listServicesResponse"]);
    expect(responses[0]?.messageResponse.value).toMatchObject({ errorCode: Code.NotFound });
    expect(responses[0]?.originalRequest?.messageRequest).toEqual({ case: "fileContainingSymbol", value: "drce.v1.Nothing" });
  });

  it("serves v1alpha for older clients", async () => {
    const alpha = client(ServerReflectionAlpha, { token });
    async function* input() {
      yield create(AlphaRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.Health" } });
    }
    const out = [];
    for await (const response of alpha.serverReflectionInfo(input())) out.push(response);
    expect(out).toHaveLength(1);
    expect(out[0]?.messageResponse.case).toBe("fileDescriptorResponse");
  });
});
