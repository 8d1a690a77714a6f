/*
 * The shapes of the legacy DRCE wire format (seed 000, "Request protocol" / "Response
 * protocol"): request types, ids as they travel, the transport cover and the result items.
 */

/** Legacy request types (`type` of a request message). */
export const LegacyRequestType = {
  SetTask: 0,
  Check: 1,
  Terminate: 2,
  GetData: 3,
  Delete: 4,
  /** Sent by nodes, never received: a request of this type is error 105. */
  StateNotification: 100,
  /** Sent by nodes, never received: a request of this type is error 105. */
  ResourceNotification: 101,
} as const;

/** An id as it travels on the wire: a number when it is a safe integer, else a string. */
export type LegacyWireId = number | string;

/**
 * The transport cover the original HCE clients wrap requests in:
 * `{"type": 2, "data": "<request JSON, or that JSON base64-encoded>", "ttl": N}`.
 * The reply goes back in the same cover, its data encoded the way the request's was.
 */
export interface LegacyCover {
  /** The cover's own `type`, echoed in the reply cover (2 in every known client). */
  readonly type: number;
  /** The cover's `ttl`, echoed in the reply cover. */
  readonly ttl: number;
  /** True when the cover's data was base64 (then the reply's data is base64 too). */
  readonly base64: boolean;
}


/** One item of a legacy response array, with every field of the protocol. */
export interface LegacyResultItem {
  error_code: number;
  error_message: string;
  exit_status: number;
  /** `[]` when there are no fields (as the protocol's examples show), else name -> value. */
  fields: Record<string, string> | [];
  files: LegacyFileItem[];
  host: string;
  id: LegacyWireId;
  node: string;
  pid: number;
  port: number;
  state: number;
  /** base64 of the stderr bytes. */
  stderr: string;
  /** Same value as `stderr`: the key the original clients read. */
  stderror: string;
  /** base64 of the stdout bytes. */
  stdout: string;
  subtasks: LegacyResultItem[];
  time: number;
  type: number;
  /**
   * Pids of the task's processes that outlived it (they left its process group and the
   * node has no cgroup to reach them). A drce addition, present only when not empty.
   */
  escaped_pids?: number[];
  /**
   * True when the command wrote more stdout than the node keeps: `stdout` holds the head and
   * the tail, and `stdout_gap_offset`/`stdout_gap_bytes` say where and how much is missing.
   * A drce addition, present only when truncated, with `stdout_size` (the true size).
   */
  stdout_truncated?: boolean;
  /** Bytes the command wrote to stdout in all (with `stdout_truncated`). */
  stdout_size?: number;
  /** Offset in the stream (and in the decoded `stdout`) where the bytes not kept begin. */
  stdout_gap_offset?: number;
  /** Bytes of stdout not kept. */
  stdout_gap_bytes?: number;
  /** As `stdout_truncated`, for stderr. */
  stderr_truncated?: boolean;
  /** As `stdout_size`, for stderr. */
  stderr_size?: number;
  /** As `stdout_gap_offset`, for stderr. */
  stderr_gap_offset?: number;
  /** As `stdout_gap_bytes`, for stderr. */
  stderr_gap_bytes?: number;
}

/** A file of a request or a result: data is base64 when bit 31 of action is set, else UTF-8 text. */
export interface LegacyFileItem {
  name: string;
  data: string;
  action: number;
}

/** Converts a domain id to its wire form: a number when it is a canonical safe integer, else the string. */
export function toWireId(id: string): LegacyWireId {
  if (/^(0|[1-9][0-9]*)$/.test(id)) {
    const n = Number(id);
    if (Number.isSafeInteger(n)) return n;
  }
  return id;
}

