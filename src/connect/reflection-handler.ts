import { type DescFile, type DescService, toBinary } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import { ServerReflection as ServerReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** The request fields both reflection versions share (the messages are identical on the wire). */
type ReflectionRequest = {
  host: string;
  messageRequest:
    | { case: "fileByFilename"; value: string }
    | { case: "fileContainingSymbol"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: "allExtensionNumbersOfType"; value: string }
    | { case: "listServices"; value: string }
    | { case: undefined; value?: undefined };
};

/** What a reflection response carries, before it is put in either version's message. */
type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** The reflection services of a node, in both versions clients use. */
export interface ReflectionHandlers {
  /** `grpc.reflection.v1.ServerReflection`, what current clients ask first. */
  readonly v1: ServiceImpl<typeof ServerReflectionV1>;
  /** `grpc.reflection.v1alpha.ServerReflection`, for older clients (grpcurl falls back to it). */
  readonly v1alpha: ServiceImpl<typeof ServerReflectionV1alpha>;
}

/**
 * Implements gRPC server reflection (`grpc.reflection.v1` and `v1alpha`) from the generated
 * descriptors of the services the node serves: `list_services` names them, and
 * `file_by_filename` / `file_containing_symbol` / `file_containing_extension` return the
 * serialized FileDescriptorProto of the file with every file it depends on, so that a client
 * such as grpcurl can build requests without the .proto files. The reflection services list
 * themselves too.
 */
export function createReflectionHandlers(services: readonly DescService[]): ReflectionHandlers {
  const all = [...services, ServerReflectionV1, ServerReflectionV1alpha];
  const files = new Map<string, DescFile>();
  const addFile = (file: DescFile): void => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const dependency of file.dependencies) addFile(dependency);
  };
  for (const service of all) addFile(service.file);

  // Every symbol a client may ask about: services, their methods, messages, enums, extensions.
  const symbols = new Map<string, DescFile>();
  const extensions = new Map<string, Map<number, DescFile>>();
  for (const file of files.values()) {
    for (const type of nestedTypes(file)) {
      symbols.set(type.typeName, file);
      if (type.kind === "service") for (const method of type.methods) symbols.set(`${type.typeName}.${method.name}`, file);
      if (type.kind === "extension") {
        const byNumber = extensions.get(type.extendee.typeName) ?? new Map<number, DescFile>();
        byNumber.set(type.number, file);
        extensions.set(type.extendee.typeName, byNumber);
      }
    }
  }
  const names = [...new Set(all.map((service) => service.typeName))].sort();

  const withDependencies = (file: DescFile): Uint8Array[] => {
    const seen = new Set<string>();
    const out: Uint8Array[] = [];
    const visit = (f: DescFile): void => {
      if (seen.has(f.proto.name)) return;
      seen.add(f.proto.name);
      out.push(toBinary(FileDescriptorProtoSchema, f.proto));
      for (const dependency of f.dependencies) visit(dependency);
    };
    visit(file);
    return out;
  };
  const notFound = (message: string): ReflectionAnswer => ({ case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: message } });
  const fileAnswer = (file: DescFile | undefined, what: string): ReflectionAnswer =>
    file === undefined ? notFound(`${what} not found`) : { case: "fileDescriptorResponse", value: { fileDescriptorProto: withDependencies(file) } };

  const answer = (request: ReflectionRequest): ReflectionAnswer => {
    const ask = request.messageRequest;
    switch (ask.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: names.map((name) => ({ name })) } };
      case "fileByFilename":
        return fileAnswer(files.get(ask.value), `file ${JSON.stringify(ask.value)}`);
      case "fileContainingSymbol":
        return fileAnswer(symbols.get(ask.value.replace(/^\./, "")), `symbol ${JSON.stringify(ask.value)}`);
      case "fileContainingExtension":
        return fileAnswer(extensions.get(ask.value.containingType)?.get(ask.value.extensionNumber), `extension ${ask.value.extensionNumber} of ${JSON.stringify(ask.value.containingType)}`);
      case "allExtensionNumbersOfType": {
        if (!symbols.has(ask.value)) return notFound(`type ${JSON.stringify(ask.value)} not found`);
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: ask.value, extensionNumber: [...(extensions.get(ask.value)?.keys() ?? [])] } };
      }
      default:
        return { case: "errorResponse", value: { errorCode: Code.InvalidArgument, errorMessage: "the request names no reflection query" } };
    }
  };

  // The two versions differ only in their package name, so one answer fits both messages.
  async function* serve(requests: AsyncIterable<ReflectionRequest>) {
    for await (const request of requests) {
      // A plain copy of the request: the message objects of one version are not the other's.
      const ask = request.messageRequest;
      const original = {
        host: request.host,
        messageRequest:
          ask.case === "fileContainingExtension"
            ? { case: ask.case, value: { containingType: ask.value.containingType, extensionNumber: ask.value.extensionNumber } }
            : ask.case === undefined
              ? { case: undefined }
              : { case: ask.case, value: ask.value },
      };
      yield { validHost: request.host, originalRequest: original, messageResponse: answer(request) };
    }
  }
  return {
    v1: { serverReflectionInfo: (requests) => serve(requests) as never },
    v1alpha: { serverReflectionInfo: (requests) => serve(requests) as never },
  };
}
