/** The process streams and environment a CLI command uses (replaceable in tests). */
export interface CliIo {
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
  /**
   * The file descriptor `stdin` reads, when it is the process's own: a command may then look
   * at what it is (`/dev/null`, an empty file) without making the stream. Absent for streams
   * of other kinds.
   */
  readonly stdinFd?: number;
}

/**
 * The real process's streams and environment. Each stream is made when first read: Node.js
 * makes `process.stdin` (with `fs/promises` and `readline` for a file or `/dev/null`) and
 * `process.stdout` at their first use, and `drce run -- true` with a stdin of `/dev/null`
 * needs neither.
 */
export function processIo(): CliIo {
  return {
    get stdin() {
      return process.stdin;
    },
    get stdout() {
      return process.stdout;
    },
    get stderr() {
      return process.stderr;
    },
    env: process.env,
    stdinFd: 0,
  };
}
