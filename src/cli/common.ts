import { readFile } from "node:fs/promises";
import type { Client } from "@connectrpc/connect";
import { TaskState, type TaskResult } from "../../gen/drce/v1/task_pb.js";
import type { TaskService } from "../../gen/drce/v1/task_service_pb.js";
import { createTaskClient, serverUrl, type ClientTls, type TaskClientOptions } from "./client.js";
import { explainFailure } from "./transport-errors.js";
import { LocalError, UsageError } from "./errors.js";
import type { CliIo } from "./io.js";
import type { CommonValues } from "./options.js";
import { formatDuration, writeBytes, writeLines } from "./output.js";
import { hasExitStatus, isFinalState, stateName } from "./states.js";

/** The generated TaskService client. */
export type TaskServiceClient = Client<typeof TaskService>;

/**
 * Runs body with a client for the node the common options name (with the bearer token of
 * --token, --token-file or DRCE_TOKEN), and closes the connection afterwards. A transport
 * failure comes out explained in words (see {@link explainFailure}).
 */
export async function withClient<T>(values: CommonValues, io: CliIo, body: (client: TaskServiceClient) => Promise<T>): Promise<T> {
  const options = await clientOptionsFrom(values, io);
  const handle = createTaskClient(options);
  try {
    return await body(handle.client);
  } catch (error) {
    throw explainFailure(error, { server: options.server, hasToken: options.token !== "", transport: handle.transport() });
  } finally {
    handle.close();
  }
}

/** The default of `--connect-timeout`, in seconds. */
export const defaultConnectTimeoutSeconds = 10;

/**
 * The connection options the common flags name: the server URL, the token (`--token`, else
 * `--token-file`, else DRCE_TOKEN), the TLS files and the connect timeout.
 */
export async function clientOptionsFrom(values: CommonValues, io: CliIo): Promise<TaskClientOptions & { readonly token: string }> {
  const server = serverUrl(values.server, io.env);
  const tls = await clientTlsFromOptions(values, io.env);
  return { server, token: await tokenFromOptions(values, io.env), tls, connectTimeoutMs: connectTimeoutMs(values["connect-timeout"]) };
}

/** The bearer token a command sends: `--token T`, else the first line of `--token-file F`, else DRCE_TOKEN. */
export async function tokenFromOptions(values: CommonValues, env: Readonly<Record<string, string | undefined>>): Promise<string> {
  if (values.token !== undefined && values["token-file"] !== undefined) throw new UsageError("give --token or --token-file, not both");
  if (values.token !== undefined) {
    if (values.token === "") throw new UsageError("--token is empty");
    return values.token;
  }
  if (values["token-file"] !== undefined) {
    const token = Buffer.from(await readLocalFile(values["token-file"])).toString("utf8").trim();
    if (token === "") throw new UsageError(`--token-file ${values["token-file"]}: the file is empty`);
    return token;
  }
  return env["DRCE_TOKEN"] ?? "";
}

/** `--connect-timeout SEC` in milliseconds (default 10 s; 0 waits for ever). */
export function connectTimeoutMs(flag: string | undefined): number {
  if (flag === undefined) return defaultConnectTimeoutSeconds * 1000;
  if (!/^\d+(\.\d+)?$/.test(flag)) throw new UsageError(`--connect-timeout must be a number of seconds, got ${JSON.stringify(flag)}`);
  return Math.round(Number(flag) * 1000);
}

/**
 * Reads the TLS files a command names: `--cacert`, `--cert`, `--cert-key`, else
 * `DRCE_CACERT`, `DRCE_CERT`, `DRCE_CERT_KEY`. A certificate needs its key and the reverse.
 */
export async function clientTlsFromOptions(values: CommonValues, env: Readonly<Record<string, string | undefined>>): Promise<ClientTls> {
  const pick = (flag: string | undefined, name: string): string | undefined => flag ?? (env[name] || undefined);
  const ca = pick(values.cacert, "DRCE_CACERT");
  const cert = pick(values.cert, "DRCE_CERT");
  const key = pick(values["cert-key"], "DRCE_CERT_KEY");
  if ((cert === undefined) !== (key === undefined)) throw new UsageError("--cert and --cert-key go together (or DRCE_CERT and DRCE_CERT_KEY)");
  return {
    ...(ca === undefined ? {} : { ca: await readLocalFile(ca) }),
    ...(cert === undefined ? {} : { cert: await readLocalFile(cert) }),
    ...(key === undefined ? {} : { key: await readLocalFile(key) }),
  };
}

/** Writes a command's usage text to stdout; `--help` exits 0. */
export async function showUsage(io: CliIo, usage: string): Promise<number> {
  await writeBytes(io.stdout, usage.endsWith("\n") ? usage : `${usage}\n`);
  return 0;
}

/** The single task reference (id or alias) a command takes. */
export function oneRef(positionals: readonly string[]): string {
  if (positionals.length === 0) throw new UsageError("a task id or alias is required");
  if (positionals.length > 1) throw new UsageError(`one task id or alias expected, got ${positionals.length}: ${positionals.join(" ")}`);
  const ref = positionals[0] ?? "";
  if (ref === "") throw new UsageError("the task id or alias is empty");
  return ref;
}

/** Fails when a command that takes no arguments got some. */
export function noPositionals(positionals: readonly string[]): void {
  if (positionals.length > 0) throw new UsageError(`unexpected argument: ${positionals[0]}`);
}

/** Reads a local file the user named, as a LocalError when it cannot be read. */
export async function readLocalFile(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new LocalError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
}

/** Reads a stream to its end. */
export async function readAll(stream: NodeJS.ReadableStream): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

/** `ID<TAB>STATE`, the line submit, kill and rm print. */
export function stateLine(result: Pick<TaskResult, "id" | "state">): string {
  return `${result.id}\t${stateName(result.state)}`;
}

/** `ID<TAB>STATE<TAB>exit=N<TAB>time=T`, the summary of a finished task. */
export function summaryLine(result: TaskResult): string {
  const exit = hasExitStatus(result.state) ? String(result.exitStatus) : "-";
  return `${result.id}\t${stateName(result.state)}\texit=${exit}\ttime=${formatDuration(result.timeMs)}`;
}

/**
 * What went wrong with a task, in one sentence for stderr, or undefined when it simply
 * ran (whatever its exit status).
 */
export function describeProblem(result: TaskResult): string | undefined {
  const error = result.errorCode !== 0 ? ` (error ${result.errorCode}${result.errorMessage === "" ? "" : `: ${result.errorMessage}`})` : "";
  switch (result.state) {
    case TaskState.FINISHED:
      return error === "" ? undefined : `task ${result.id} finished with an error${error}`;
    case TaskState.TERMINATED:
      return `task ${result.id} was terminated${result.signal === "" ? "" : ` by ${result.signal}`}${error}`;
    case TaskState.EXPIRED:
      return `task ${result.id} expired${error}`;
    case TaskState.NOT_SET:
      return `task ${result.id || "(no id)"} was refused${error}`;
    case TaskState.CRASHED:
      return `task ${result.id} crashed: the node stopped while it ran${error}`;
    default:
      if (!isFinalState(result.state)) return `task ${result.id} is ${stateName(result.state)}; it has no exit status yet`;
      return `task ${result.id} is ${stateName(result.state)}${error}`;
  }
}

/** Writes {@link describeProblem}'s sentence to stderr, if there is one. */
export async function reportProblem(io: CliIo, result: TaskResult): Promise<void> {
  const problem = describeProblem(result);
  if (problem !== undefined) await writeLines(io.stderr, [`drce: ${problem}`]);
}
