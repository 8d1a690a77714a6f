import type { NodeIdentity } from "../core/api.js";
import { TaskState } from "../domain/states.js";
import { FileAction } from "../domain/task.js";
import type { KeptGap, KeptOutput, TaskView } from "../domain/view.js";
import { encodeBase64 } from "./legacy-base64.js";
import type { LegacyDecodeFailure } from "./legacy-request.js";
import { toWireId, type LegacyCover, type LegacyFileItem, type LegacyResultItem, type LegacyWireId } from "./legacy-wire.js";

/*
 * Building of legacy replies: result items from task views, error items, and the response
 * array in the request's cover. The `fields` values are printed as the original node printed them.
 */

/** Fields the original reports as integers ("%d"); every other field is printed as "%f". */
const integerFields: ReadonlySet<string> = new Set(["TASK_VRAM", "TASK_RRAM", "TASK_THREADS"]);

/**
 * Formats a `fields` value as the original node did: strings, integers for the TASK_* byte and
 * thread counts ("2121728"), six decimals for the rest ("55.120000").
 */
export function formatFieldValue(name: string, value: number): string {
  const n = Number.isFinite(value) ? value : 0;
  return integerFields.has(name) ? String(Math.round(n)) : n.toFixed(6);
}

/** Encodes a file for the wire: base64 when bit 31 of its action is set, else UTF-8 text. */
export function encodeFileItem(file: { readonly name: string; readonly data: Uint8Array; readonly action: number }): LegacyFileItem {
  const action = file.action >>> 0;
  const data = (action & FileAction.Base64) !== 0 ? encodeBase64(file.data) : Buffer.from(file.data).toString("utf8");
  return { name: file.name, data, action };
}

/**
 * Encodes a task view (and its subtasks, recursively) as a legacy result item.
 * `requestType` is the type of the request being answered; `id` overrides the view's id for
 * the top item, so the caller gets back the id exactly as it referred to the task.
 */
export function encodeTaskView(view: TaskView, identity: NodeIdentity, requestType: number, id?: LegacyWireId, placeholder?: (kept: KeptOutput) => string): LegacyResultItem {
  const status = view.status;
  const output = (kept: KeptOutput | undefined, inline: Uint8Array | undefined): string =>
    kept !== undefined && placeholder !== undefined ? placeholder(kept) : inline === undefined ? "" : encodeBase64(inline);
  const stdout = output(view.stdoutFile, view.stdout);
  const stderr = output(view.stderrFile, view.stderr);
  const fieldEntries = Object.entries(view.fields ?? {});
  return {
    error_code: status.errorCode,
    error_message: status.errorMessage,
    exit_status: status.exitStatus,
    fields: fieldEntries.length === 0 ? [] : Object.fromEntries(fieldEntries.map(([k, v]) => [k, formatFieldValue(k, v)])),
    files: (view.files ?? []).map(encodeFileItem),
    host: identity.host,
    id: id ?? toWireId(status.id),
    node: identity.node,
    pid: status.pid,
    port: identity.port,
    state: status.state,
    stderr,
    stderror: stderr,
    stdout,
    subtasks: view.subtasks.map((sub) => encodeTaskView(sub, identity, requestType, undefined, placeholder)),
    time: Math.max(0, Math.round(view.timeMs)),
    type: requestType,
    ...(status.escapedPids.length > 0 ? { escaped_pids: [...status.escapedPids] } : {}),
    ...truncation("stdout", status.stdoutTruncated, status.stdoutSize, view.stdoutGap),
    ...truncation("stderr", status.stderrTruncated, status.stderrSize, view.stderrGap),
  };
}

/** The truncation fields of a stream whose kept copy was cut: its true size and, on a view with output, the gap. */
function truncation(stream: "stdout" | "stderr", truncated: boolean, size: number, gap: KeptGap | undefined): Partial<LegacyResultItem> {
  if (!truncated) return {};
  const fields: Record<string, number | boolean> = { [`${stream}_truncated`]: true, [`${stream}_size`]: size };
  if (gap !== undefined) {
    fields[`${stream}_gap_offset`] = gap.offset;
    fields[`${stream}_gap_bytes`] = gap.bytes;
  }
  return fields as Partial<LegacyResultItem>;
}

/** What an error item says. */
export interface LegacyErrorItemInit {
  readonly id: LegacyWireId;
  readonly type: number;
  readonly errorCode: number;
  readonly message: string;
  /** 6 (not set) for refused requests, 3 for an unknown task. */
  readonly state: number;
}

/** Builds a result item that carries only an error (every other field at its default). */
export function encodeErrorItem(identity: NodeIdentity, init: LegacyErrorItemInit): LegacyResultItem {
  return {
    error_code: init.errorCode,
    error_message: init.message,
    exit_status: 0,
    fields: [],
    files: [],
    host: identity.host,
    id: init.id,
    node: identity.node,
    pid: 0,
    port: identity.port,
    state: init.state,
    stderr: "",
    stderror: "",
    stdout: "",
    subtasks: [],
    time: 0,
    type: init.type,
  };
}

/** Builds the error item answering a message that could not be decoded (state 6, not set). */
export function encodeDecodeFailure(identity: NodeIdentity, failure: LegacyDecodeFailure): LegacyResultItem {
  return encodeErrorItem(identity, { id: failure.id, type: failure.type, errorCode: failure.code, message: failure.message, state: TaskState.NotSet });
}

/**
 * Serialises a response: the JSON array of items, wrapped in the request's cover when it came
 * in one (`{"type", "data", "ttl"}`, data being the response JSON, base64 when the request's was).
 */
export function encodeLegacyResponse(items: readonly LegacyResultItem[], cover?: LegacyCover): string {
  const json = JSON.stringify(items);
  if (cover === undefined) return json;
  const data = cover.base64 ? Buffer.from(json, "utf8").toString("base64") : json;
  return JSON.stringify({ type: cover.type, data, ttl: cover.ttl });
}
