/**
 * Exit codes of the `drce` command.
 *
 * | code    | meaning                                                                         |
 * |---------|---------------------------------------------------------------------------------|
 * | 0       | success (for run, submit --sync and fetch: the task exited 0)                   |
 * | 1..255  | run, submit --sync, fetch: the task's own exit status (128+N after signal N)    |
 * | 1       | a local failure: a file given to --file, --key, --stdin-file cannot be read, or |
 * |         | a result file cannot be written                                                 |
 * | 2       | usage error: unknown option, bad value, missing command                         |
 * | 3       | the task id or alias is unknown to the node (RPC code NotFound)                 |
 * | 124     | the task expired: its --timeout or --time-max passed (state EXPIRED)            |
 * | 125     | the node failed or refused: any other RPC error (unreachable, unauthenticated,  |
 * |         | invalid argument, ...), or the task was refused (state NOT_SET), crashed, or    |
 * |         | has no exit status yet                                                          |
 * | 128+N   | the task was terminated with signal N (143 when the signal is not known)        |
 * | 130/143 | drce itself got SIGINT/SIGTERM; `run` then terminated the remote task           |
 * | 141     | drce's stdout was closed by the reader (EPIPE), as a SIGPIPE'd program would     |
 *
 * The codes 124 and 125 follow timeout(1) and `docker run`. A task may itself exit with
 * 3, 124 or 125; the message that drce writes to stderr tells them apart.
 */
export const ExitCode = {
  Ok: 0,
  LocalFailure: 1,
  Usage: 2,
  NotFound: 3,
  Expired: 124,
  NodeError: 125,
  BrokenPipe: 141,
} as const;
