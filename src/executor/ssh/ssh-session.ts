import type { FileLocation, SessionRunner } from "../runner.js";
import type { SshRunner } from "./ssh-runner.js";

/**
 * The session runner of SSH sessions: the work dir is the request's remote path, or
 * `.drce/tasks/<task id>` below the remote user's home; files go over SFTP on the pooled
 * connection; commands run through the SSH runner. Recovery kills nothing remotely: a dead
 * node's remote command lost its channel, and the node cannot tell it from another.
 */
export function createSshSession(runner: SshRunner): SessionRunner {
  return {
    prepareWorkDir(spec) {
      return runner.filesFor(spec.session).prepareWorkDir(spec.workDir !== "" ? spec.workDir : `.drce/tasks/${spec.id}`);
    },
    fileLocation: (_spec, workDir, name): FileLocation => ({ dir: workDir, name }),
    filesFor: (spec) => runner.filesFor(spec.session),
    userFor: () => undefined,
    start: (request) => runner.start(request),
    reap: () => Promise.resolve({ killed: false }),
  };
}
