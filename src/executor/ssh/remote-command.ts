import { constants as osConstants } from "node:os";
import { DrceError, ErrorCode } from "../../domain/errors.js";

/** Quotes a string for a POSIX shell: single quotes, each `'` written as `'\''`. */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** What the remote wrapper needs to start one command. */
export interface RemoteCommandOptions {
  /** Shell command line; empty when argv is used. */
  readonly command: string;
  /** Argument vector run without a shell, when command is empty. */
  readonly argv: readonly string[];
  /** Program running command, e.g. "/bin/bash -c"; empty means "/bin/sh -c". */
  readonly shell: string;
  /** Variables exported before the command. */
  readonly env: Readonly<Record<string, string>>;
  /** Remote working directory, or empty to stay in the login directory. */
  readonly workDir: string;
  /** Random token that makes the wrapper's report line unmistakable. */
  readonly nonce: string;
}

/** Prefix of the line the wrapper writes on stderr once the command is about to start. */
export const spawnMarker = "DRCE-PGID";
/** Prefix of the line the wrapper writes on stderr when the command cannot be started. */
export const failMarker = "DRCE-FAIL";

/** Exit status the wrapper uses when it refuses to start the command (after a fail line). */
export const wrapperFailStatus = 125;

/**
 * Builds the command line sent in the SSH exec request. It runs a small POSIX sh wrapper
 * (whatever the user's login shell is) that enters the working directory, exports the
 * environment, checks the shell, reports `DRCE-PGID <pid> <pgid> <nonce>` on stderr, then
 * execs the command, so the command keeps the wrapper's pid. OpenSSH has already made the
 * session's process its own session and group leader; when a server did not, `setsid` makes
 * it so (without forking, since the wrapper is then not a group leader).
 * A failure before the exec is reported as `DRCE-FAIL <legacy code> <nonce>` and exit 125.
 * Throws a DrceError (102) for an environment name that is not a shell identifier.
 */
export function buildRemoteCommand(options: RemoteCommandOptions): string {
  const lines: string[] = [];
  const fail = (code: number): string => `{ echo '${failMarker} ${code} ${options.nonce}' >&2; exit ${wrapperFailStatus}; }`;
  if (options.workDir !== "") lines.push(`cd ${shQuote(options.workDir)} 2>/dev/null || ${fail(ErrorCode.SetHomeDir)}`);
  for (const [name, value] of Object.entries(options.env)) {
    // The domain validates names; a name reaching here unchecked must not become shell code.
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new DrceError("invalid", `environment variable name ${JSON.stringify(name)} is not allowed`, { legacyCode: ErrorCode.SetEnvironment });
    }
    if (value.includes("\0")) {
      throw new DrceError("invalid", `environment variable ${name} holds a NUL byte`, { legacyCode: ErrorCode.SetEnvironment });
    }
    lines.push(`export ${name}=${shQuote(value)} || ${fail(ErrorCode.SetEnvironment)}`);
  }
  let program: string;
  let words: string[];
  if (options.command !== "") {
    const shellWords = (options.shell.trim() === "" ? "/bin/sh -c" : options.shell.trim()).split(/\s+/);
    program = shellWords[0] ?? "/bin/sh";
    words = [...shellWords, options.command];
    lines.push(...programChecks(program, ErrorCode.ShellNotExist, ErrorCode.ShellCannotExecute, fail));
  } else {
    program = options.argv[0] ?? "";
    words = [...options.argv];
    lines.push(...programChecks(program, ErrorCode.CommandExecution, ErrorCode.CommandExecution, fail));
  }
  lines.push(
    // Read our process group from /proc (field 5 of stat, after the parenthesised name),
    // falling back to ps; when neither works, assume sshd made us a group leader.
    `g=; if [ -r /proc/$$/stat ]; then read -r s < /proc/$$/stat; s=\${s##*) }; set -- $s; g=$3; fi`,
    `[ -n "$g" ] || g=$(ps -o pgid= -p $$ 2>/dev/null | tr -d ' ')`,
    `[ -n "$g" ] || g=$$`,
    `x=`,
    `if [ "$g" != "$$" ] && command -v setsid >/dev/null 2>&1; then x=setsid; g=$$; fi`,
    `echo "${spawnMarker} $$ $g ${options.nonce}" >&2`,
    `exec $x ${words.map(shQuote).join(" ")}`,
  );
  return `exec /bin/sh -c ${shQuote(lines.join("\n"))}`;
}

function programChecks(program: string, missing: number, notExecutable: number, fail: (code: number) => string): string[] {
  const quoted = shQuote(program);
  if (program.includes("/")) {
    return [`[ -e ${quoted} ] || ${fail(missing)}`, `[ -f ${quoted} ] && [ -x ${quoted} ] || ${fail(notExecutable)}`];
  }
  return [`command -v ${quoted} >/dev/null 2>&1 || ${fail(missing)}`];
}

/** Runs POSIX sh lines whatever the remote user's login shell is. */
function posixScript(lines: readonly string[]): string {
  return `exec /bin/sh -c ${shQuote(lines.join("\n"))}`;
}

/**
 * Shell functions over a process group: `alive` succeeds while a member that is not a
 * zombie exists (a killed process stays a zombie until its new parent reaps it, which a
 * container's init may do late), `members` prints those pids. They read `ps`, and fall back
 * to `kill -s 0` where ps is missing. (dash wants `kill -s SIG -- -PGID`; `kill -0 -- -PGID`
 * is a syntax error there.)
 */
function groupFunctions(pgid: number): string[] {
  return [
    `members() { ps -e -o pid= -o pgid= -o stat= 2>/dev/null | awk '$2 == ${pgid} && $3 !~ /^Z/ { print $1 }'; }`,
    `haveps() { [ -n "$(ps -e -o pid= 2>/dev/null | head -n 1)" ]; }`,
    `alive() { if haveps; then [ -n "$(members)" ]; else kill -s 0 -- -${pgid} 2>/dev/null; fi; }`,
    `pause() { sleep 0.05 2>/dev/null || sleep 1; }`,
  ];
}

/**
 * A command that sends a signal (a name such as "TERM") to a remote process group, then
 * waits up to `waitMs` for the group to be gone. Exit 0: the group is gone; exit 1: it still
 * lives. The wait happens remotely, so one channel serves the whole try.
 */
export function signalAndWaitCommand(signalName: string, pgid: number, waitMs: number): string {
  const steps = Math.max(0, Math.ceil(waitMs / 50));
  return posixScript([
    ...groupFunctions(pgid),
    `kill -s ${signalName} -- -${pgid} 2>/dev/null || exit 0`,
    `i=0`,
    `while [ $i -lt ${steps} ]; do alive || exit 0; pause; i=$((i+1)); done`,
    `alive && exit 1`,
    `exit 0`,
  ]);
}

/**
 * A command that kills what is left of a remote process group after its leader ended and
 * prints the pids still there after a second (those are reported as escaped).
 */
export function reapGroupCommand(pgid: number): string {
  return posixScript([
    ...groupFunctions(pgid),
    `kill -s KILL -- -${pgid} 2>/dev/null || exit 0`,
    `i=0`,
    `while [ $i -lt 20 ]; do alive || exit 0; pause; i=$((i+1)); done`,
    `if haveps; then members; else pgrep -g ${pgid} 2>/dev/null; fi`,
    `exit 0`,
  ]);
}

/** The name (without "SIG") of a signal number, as `kill -s` takes it, or undefined. */
export function signalName(signal: number): string | undefined {
  for (const [name, value] of Object.entries(osConstants.signals)) {
    if (value === signal) return name.replace(/^SIG/, "");
  }
  return undefined;
}

/** The number of a signal name such as "SIGKILL" or "KILL", or undefined. */
export function signalNumber(name: string): number | undefined {
  const full = name.startsWith("SIG") ? name : `SIG${name}`;
  return (osConstants.signals as Record<string, number | undefined>)[full];
}
