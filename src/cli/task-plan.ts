import { create } from "@bufbuild/protobuf";
import { SessionSchema, SessionType, TaskMode, TaskSpecSchema, type FileSpec, type TaskSpec } from "../../gen/drce/v1/task_pb.js";
import { UsageError } from "./errors.js";
import { parseEnvAssignment, parseFileOption, parseGetOption, parseSshTarget, parseUint, resolveCommand, type GetRequest } from "./option-values.js";
import type { TaskOptionValues } from "./options.js";

/*
 * The task `run` and `submit` send, built from their parsed options: the command, its
 * environment, the files to write before and read after, the limits of time, and the session
 * (the node itself, as another user, or over SSH).
 */

/** Action bits of a FileSpec (see proto FileSpec.action). */
export const FileAction = { CreateBefore: 1, DeleteBefore: 2, ReadAfter: 4, DeleteAfter: 8 } as const;

/** What {@link taskSpecFromOptions} needs from the outside world. */
export interface SpecDeps {
  /** Reads a local file (for --file @PATH, --key). */
  readonly readFile: (path: string) => Promise<Uint8Array>;
  /** The local environment (for --env NAME, --password-env, --passphrase-env). */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** A task spec built from the command line, and the files to write locally afterwards. */
export interface TaskPlan {
  readonly spec: TaskSpec;
  readonly gets: readonly GetRequest[];
}

/** Builds the TaskSpec that `run` and `submit` send from their parsed options and command words. */
export async function taskSpecFromOptions(values: TaskOptionValues, words: readonly string[], deps: SpecDeps): Promise<TaskPlan> {
  const what = resolveCommand(values.command, words);
  const env: Record<string, string> = {};
  for (const assignment of values.env ?? []) {
    const [name, value] = parseEnvAssignment(assignment, deps.env);
    env[name] = value;
  }

  // --file and --get on the same name make one entry: written before, read after.
  const files = new Map<string, { data: Uint8Array; action: number }>();
  for (const text of values.file ?? []) {
    const source = parseFileOption(text);
    const data = "path" in source ? await deps.readFile(source.path) : new TextEncoder().encode(source.text);
    const entry = files.get(source.name) ?? { data: new Uint8Array(0), action: 0 };
    files.set(source.name, { data, action: entry.action | FileAction.CreateBefore });
  }
  const gets = (values.get ?? []).map(parseGetOption);
  for (const get of gets) {
    const entry = files.get(get.name) ?? { data: new Uint8Array(0), action: 0 };
    files.set(get.name, { ...entry, action: entry.action | FileAction.ReadAfter });
  }
  const fileSpecs: Array<Pick<FileSpec, "name" | "data" | "action">> = [...files].map(([name, f]) => ({ name, data: f.data, action: f.action }));

  const spec = create(TaskSpecSchema, {
    id: values.id ?? "",
    alias: values.alias ?? "",
    ...what,
    env,
    workDir: values.cwd ?? "",
    shell: values.shell ?? "",
    mode: TaskMode.SYNC,
    timeoutSeconds: values.timeout === undefined ? 0 : parseUint(values.timeout, "--timeout"),
    timeMaxMs: values["time-max"] === undefined ? 0n : BigInt(parseUint(values["time-max"], "--time-max", Number.MAX_SAFE_INTEGER)),
    ttlMs: values.ttl === undefined ? 0n : BigInt(parseUint(values.ttl, "--ttl", Number.MAX_SAFE_INTEGER)),
    cleanup: values.cleanup === true,
    files: fileSpecs,
  });
  const session = await sessionFromOptions(values, deps);
  if (session !== undefined) spec.session = session;
  return { spec, gets };
}

async function sessionFromOptions(values: TaskOptionValues, deps: SpecDeps): Promise<TaskSpec["session"]> {
  const sshOnly = (["password-env", "key", "passphrase-env", "fingerprint"] as const).filter((k) => values[k] !== undefined);
  if (values.ssh === undefined) {
    if (sshOnly.length > 0) throw new UsageError(`--${sshOnly[0]} needs --ssh user@host`);
    if (values.uid === undefined && values.gid === undefined) return undefined;
    // Run as another user on the node (which must run as root).
    return create(SessionSchema, {
      type: SessionType.LOCAL,
      ...(values.uid === undefined ? {} : { runAsUid: parseUint(values.uid, "--uid", 0xfffffffe) }),
      ...(values.gid === undefined ? {} : { runAsGid: parseUint(values.gid, "--gid", 0xfffffffe) }),
    });
  }
  if (values.uid !== undefined || values.gid !== undefined) throw new UsageError("--uid and --gid apply to tasks on the node itself, not over --ssh");
  const target = parseSshTarget(values.ssh);
  const secret = (flag: "password-env" | "passphrase-env"): string => {
    const name = values[flag];
    if (name === undefined) return "";
    const value = deps.env[name];
    if (value === undefined) throw new UsageError(`--${flag} ${name}: ${name} is not set in the local environment`);
    return value;
  };
  const key = values.key === undefined ? "" : new TextDecoder().decode(await deps.readFile(values.key));
  return create(SessionSchema, {
    type: SessionType.SSH,
    host: target.host,
    port: target.port,
    user: target.user,
    password: secret("password-env"),
    privateKey: key,
    passphrase: secret("passphrase-env"),
    hostFingerprint: values.fingerprint ?? "",
  });
}
