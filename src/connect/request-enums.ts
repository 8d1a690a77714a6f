import { isMessage, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ErrorCode } from "../domain/errors.js";
import { PlacementModeSchema } from "../../gen/drce/v1/task_pb.js";

const placementModeTypeName = PlacementModeSchema.typeName;

/**
 * Refuses a request in which any enum field, at any depth (task, session, subtasks, list
 * filters), holds a number its enum does not name: InvalidArgument, legacy error 103 in the
 * `drce-error-code` metadata, the message naming the field.
 *
 * Proto3 enums are open: a binary (or numeric JSON) request may carry any number, and the
 * decoded message keeps it. Without this check `mode` 99 ran as sync and `session.type` 77
 * ran a local task; every enum of a request now means one of its declared values or is refused.
 * Client-streaming requests are checked message by message as the handler reads them.
 */
export const refuseUnknownEnums: Interceptor = (next) => async (request) => {
  if (request.stream) {
    const messages = request.message;
    const input = request.method.input;
    async function* checked(): AsyncGenerator<Message> {
      for await (const message of messages) {
        checkEnums(input, message as unknown as Record<string, unknown>, "");
        yield message;
      }
    }
    return next({ ...request, message: checked() } as typeof request);
  }
  checkEnums(request.method.input, request.message as unknown as Record<string, unknown>, "");
  return next(request);
};

/** Throws InvalidArgument at the first enum field of `message` (a `desc` message) with an undeclared number. */
export function checkEnums(desc: DescMessage, message: Record<string, unknown>, path: string): void {
  for (const field of desc.fields) {
    const name = path === "" ? field.name : `${path}.${field.name}`;
    const value = field.oneof === undefined ? message[field.localName] : oneofValue(message, field);
    if (value === undefined) continue;
    checkValue(field, value, name);
  }
}

/** The value of a oneof member, when it is the case set. */
function oneofValue(message: Record<string, unknown>, field: DescField): unknown {
  const group = message[field.oneof?.localName ?? ""] as { case?: string; value?: unknown } | undefined;
  return group?.case === field.localName ? group.value : undefined;
}

function checkValue(field: DescField, value: unknown, name: string): void {
  switch (field.fieldKind) {
    case "enum":
      checkEnumNumber(field.enum.values, field.enum.typeName, value, name);
      return;
    case "message":
      if (isMessage(value)) checkEnums(field.message, value as unknown as Record<string, unknown>, name);
      return;
    case "list":
      (value as unknown[]).forEach((item, index) => {
        if (field.listKind === "enum") checkEnumNumber(field.enum.values, field.enum.typeName, item, `${name}[${index}]`);
        else if (field.listKind === "message" && isMessage(item)) checkEnums(field.message, item as unknown as Record<string, unknown>, `${name}[${index}]`);
      });
      return;
    case "map":
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        if (field.mapKind === "enum") checkEnumNumber(field.enum.values, field.enum.typeName, item, `${name}[${key}]`);
        else if (field.mapKind === "message" && isMessage(item)) checkEnums(field.message, item as unknown as Record<string, unknown>, `${name}[${key}]`);
      }
      return;
    default:
      return;
  }
}

function checkEnumNumber(values: readonly { readonly number: number }[], typeName: string, value: unknown, name: string): void {
  if (values.some((v) => v.number === value)) return;
  // An unknown placement mode is the placer's to refuse, with the protocol's own code
  // (5001, node mode not supported); a data node ignores placement altogether.
  if (typeName === placementModeTypeName) return;
  const shortName = typeName.slice(typeName.lastIndexOf(".") + 1);
  throw new ConnectError(`${name}: ${String(value)} is not a ${shortName} value`, Code.InvalidArgument, { "drce-error-code": String(ErrorCode.BadInput) });
}
