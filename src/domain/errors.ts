/**
 * The legacy DRCE error codes (Appendix 1 of the protocol), in one table.
 */
export const ErrorCode = {
  None: 0,
  Parse: 1,
  Instantiation: 2,
  MakeDefaultJson: 3,
  SetHomeDir: 4,
  SetMandatoryEnv: 5,
  Serialization: 11,
  Unserialization: 12,
  UnserializationBadJson: 13,
  TaskIdRange: 14,
  ShellNotExist: 15,
  ShellCannotExecute: 16,
  InternalFo: 100,
  CommandExecution: 101,
  SetEnvironment: 102,
  BadInput: 103,
  CreateTask: 104,
  BadRequestType: 105,
  CreateObject: 106,
  ExecuteTask: 107,
  ReadStatusFile: 108,
  ReadDataFile: 109,
  ReadRequestFile: 110,
  GetDataStillRunning: 111,
  ReadBadData: 112,
  Terminate: 113,
  InvalidPid: 114,
  Notification: 115,
  TerminatedExpired: 116,
  TerminatedSubtaskExpired: 117,
  Canceled: 118,
  ResourceLimits: 119,
  Cleanup: 120,
  DeleteData: 121,
  ListTasks: 122,
  Busy: 123,
  FileCreate: 201,
  FileDeleteBefore: 202,
  FileRead: 203,
  FileDeleteAfter: 204,
  NoTargetNode: 5000,
  NodeModeNotSupported: 5001,
  LimitsOnEveryNode: 5002,
} as const;

/** A legacy error code number. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The protocol's description of each error code. */
export const errorDescriptions: Readonly<Record<number, string>> = {
  0: "No errors",
  1: "Parse error",
  2: "General internal error of instantiation functional object",
  3: "General internal error of make default JSON",
  4: "General internal error of set home directory",
  5: "General internal error of set mandatory environment variables",
  11: "General internal error of serialization",
  12: "General internal error of unserialization",
  13: "General internal error unserialization json with bad format",
  14: "General internal error task ID has not allowed range",
  15: "General internal error shell script not exist",
  16: "General internal error shell script cannot execute",
  100: "General internal FO error",
  101: "General command execution error",
  102: "General error set environments",
  103: "General error bad input params",
  104: "General error of create new task",
  105: "General error bad type of task request",
  106: "General error create some object",
  107: "General error appeared during execute task",
  108: "General error read status file",
  109: "General error read data file",
  110: "General error read request file",
  111: "General error get data, but task continues to run",
  112: "General error read bad data content",
  113: "General error terminate task",
  114: "General error invalid pid process",
  115: "General error execute notification functor",
  116: "General error terminated expired task",
  117: "General error terminated subtask after expired main task",
  118: "General error canceled task",
  119: "General error exceeded resource limits",
  120: "General error cleanup task data",
  121: "General error delete task data",
  122: "General error build list all tasks on cluster node",
  123: "General error getting check state, because task is busy",
  201: "Can't create target source file before execute",
  202: "Can't delete target source file before execute",
  203: "Can't read target source file after execute",
  204: "Can't delete target source file after execute",
  5000: "No target node clients available",
  5001: "Node mode not supported",
  5002: "Resource limits exceeded on every candidate node",
};

/**
 * What kind of failure a {@link DrceError} is, independent of any transport.
 * connect/ maps each kind to a Connect Code, gateway/ to a legacy result.
 */
export type ErrorKind =
  | "invalid" // the request is malformed or refused by policy
  | "not-found" // no task has this id or alias
  | "exists" // the id or alias is taken by a different request or an unfinished task
  | "precondition" // the task is in a state that does not allow the call
  | "denied" // the node's policy does not let this caller have it (e.g. running as root)
  | "exhausted" // a node limit (queue, size) refuses the request
  | "unavailable" // storage or another dependency failed; retrying may help
  | "internal"; // a bug

/** Options of a {@link DrceError}. */
export interface DrceErrorOptions {
  /** The legacy error code to report. */
  readonly legacyCode?: number;
  /** The underlying error. */
  readonly cause?: unknown;
  /** For "exhausted": milliseconds after which a retry may succeed. */
  readonly retryAfterMs?: number;
}

/**
 * The one error type domain/, store/, executor/ and core/ throw for expected failures.
 * The message is safe to show a caller: it never holds a stack or a node-side path.
 */
export class DrceError extends Error {
  override name = "DrceError";
  /** The legacy error code. */
  readonly legacyCode: number;
  /** For "exhausted": milliseconds after which a retry may succeed. */
  readonly retryAfterMs: number | undefined;

  constructor(
    readonly kind: ErrorKind,
    message: string,
    options: DrceErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.legacyCode = options.legacyCode ?? defaultLegacyCode[kind];
    this.retryAfterMs = options.retryAfterMs;
  }
}

const defaultLegacyCode: Record<ErrorKind, number> = {
  invalid: ErrorCode.BadInput,
  "not-found": ErrorCode.None,
  exists: ErrorCode.CreateTask,
  precondition: ErrorCode.Terminate,
  denied: ErrorCode.CreateTask,
  exhausted: ErrorCode.ResourceLimits,
  unavailable: ErrorCode.InternalFo,
  internal: ErrorCode.InternalFo,
};
