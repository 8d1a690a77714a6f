import { userInfo } from "node:os";

let cachedUser: { readonly homedir: string; readonly username: string } | undefined;

/** The node's own user: looked up once (each lookup reads the password database). */
function nodeUser(): { readonly homedir: string; readonly username: string } {
  cachedUser ??= userInfo();
  return cachedUser;
}

/** PATH given to every task. */
export const taskPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * Builds a task's environment: a minimal base (PATH, HOME, LANG, USER, LOGNAME, SHELL) plus
 * the request's variables. The node's own environment, and so its token, never reaches a task.
 */
export function taskEnvironment(requested: Readonly<Record<string, string>>, extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  const user = nodeUser();
  return {
    PATH: taskPath,
    HOME: user.homedir,
    LANG: "C.UTF-8",
    USER: user.username,
    LOGNAME: user.username,
    SHELL: "/bin/sh",
    ...extra,
    ...requested,
  };
}

/** Splits a shell setting ("/bin/bash -c") into program and arguments; empty means /bin/sh -c. */
export function shellCommand(shell: string, command: string): [string, string[]] {
  const parts = shell.trim() === "" ? ["/bin/sh", "-c"] : shell.trim().split(/\s+/);
  const [program, ...args] = parts as [string, ...string[]];
  // A bare program name ("bash") gets -c, as the legacy hce-starter scripts expected.
  if (args.length === 0) args.push("-c");
  return [program, [...args, command]];
}
