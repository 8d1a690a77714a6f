import { FileAction, type TaskSpec, type TerminateOptions } from "../../src/domain/task.js";
import { toWireId } from "../../src/gateway/legacy-codec.js";

/** A legacy request message as a client builds it. */
export interface LegacyMessage {
  type: number | string;
  data: string;
  id?: number | string;
  subtasks?: LegacyMessage[];
}

/** How a simulated client writes a request: each option exercises one tolerance of the decoder. */
export interface EncodeStyle {
  /** Send ids as strings ("567") rather than numbers. */
  readonly idAsString?: boolean;
  /** Send environment as an array of one-key objects, as Example 1 does. */
  readonly envAsArray?: boolean;
  /** Put tmode/time_max/cleanup at the top level of data instead of inside session. */
  readonly modeAtTop?: boolean;
  /** Break base64 with CRLF every 76 characters, as PHP's chunk_split does. */
  readonly crlf?: boolean;
}

/** Base64 of text or bytes, with CRLF every 76 characters when asked (the original clients' form). */
export function legacyBase64(content: string | Uint8Array, crlf = true): string {
  const b64 = Buffer.from(typeof content === "string" ? Buffer.from(content, "utf8") : content).toString("base64");
  if (!crlf) return b64;
  return (b64.match(/.{1,76}/g) ?? [""]).join("\r\n");
}

/** Builds a request message of any type from its data object. */
export function legacyRequest(type: number, id: number | string, data: unknown, crlf = true): LegacyMessage {
  return { type, id, data: legacyBase64(JSON.stringify(data), crlf) };
}

/** Encodes a TaskSpec as the set-task request (type 0) a legacy client would send. */
export function encodeSetRequest(spec: TaskSpec, style: EncodeStyle = {}): LegacyMessage {
  const modeFields = { tmode: spec.mode, time_max: spec.timeMaxMs, cleanup: spec.cleanup ? 1 : 0 };
  const env = style.envAsArray ? Object.entries(spec.env).map(([k, v]) => ({ [k]: v })) : { ...spec.env };
  const session: Record<string, unknown> = {
    type: spec.session.type === "ssh" ? 1 : 0,
    shell: spec.shell,
    environment: env,
    home_dir: spec.workDir,
    timeout: spec.timeoutSeconds,
    ...(style.modeAtTop ? {} : modeFields),
  };
  if (spec.session.type === "ssh") {
    Object.assign(session, {
      host: spec.session.host,
      port: spec.session.port,
      user: spec.session.user,
      password: spec.session.password,
      private_key: spec.session.privateKey,
      passphrase: spec.session.passphrase,
      fingerprint: spec.session.hostFingerprint,
    });
  }
  const data: Record<string, unknown> = {
    session,
    command: spec.command,
    argv: spec.argv,
    alias: spec.alias,
    ttl: spec.ttlMs,
    input: Buffer.from(spec.input).toString("utf8"),
    files: spec.files.map((f) => ({
      name: f.name,
      data: (f.action & FileAction.Base64) !== 0 ? legacyBase64(f.data, style.crlf ?? true) : Buffer.from(f.data).toString("utf8"),
      action: f.action >>> 0,
    })),
    limits: {
      proc_max: spec.limits.procMax,
      threads_max: spec.limits.threadsMax,
      cpu_max: spec.limits.cpuMax,
      iowait_max: spec.limits.iowaitMax,
      vram_free: spec.limits.vramFree,
      vram_free_min: spec.limits.vramFreeMin,
      rram_free: spec.limits.rramFree,
      rram_free_min: spec.limits.rramFreeMin,
      disk_free: spec.limits.diskFree,
      disk_free_min: spec.limits.diskFreeMin,
      iowait_usage_max: spec.limits.iowaitUsageMax,
      vram_usage_max: spec.limits.vramUsageMax,
      rram_usage_max: spec.limits.rramUsageMax,
      disk_usage_max: spec.limits.diskUsageMax,
      disk_usage_max_bytes: spec.limits.diskUsageMaxBytes,
    },
    ...(style.modeAtTop ? modeFields : {}),
  };
  const message: LegacyMessage = {
    type: 0,
    data: legacyBase64(JSON.stringify(data), style.crlf ?? true),
    subtasks: spec.subtasks.map((sub) => encodeSetRequest(sub, style)),
  };
  if (spec.id !== "") message.id = style.idAsString ? spec.id : toWireId(spec.id);
  return message;
}

/** Encodes terminate options as terminate data (type 2). */
export function encodeTerminateData(options: TerminateOptions): Record<string, number> {
  return { alg: options.alg, delay: options.delayMs, repeat: options.repeat, signal: options.signal, cleanup: options.cleanup ? 1 : 0 };
}

/** Wraps a request in the original clients' cover, its data raw JSON or base64. */
export function cover(message: unknown, base64: boolean, ttl = 30000): { type: number; data: string; ttl: number } {
  const json = JSON.stringify(message);
  return { type: 2, data: base64 ? legacyBase64(json, false) : json, ttl };
}

/** Unwraps a reply cover into the response items. */
export function uncover(body: string): unknown {
  const outer = JSON.parse(body) as { data: string };
  const data = outer.data.startsWith("[") ? outer.data : Buffer.from(outer.data, "base64").toString("utf8");
  return JSON.parse(data);
}
