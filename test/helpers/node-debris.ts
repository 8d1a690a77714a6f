import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildNode } from "./child-node.js";

/**
 * What a test file of real node processes leaves behind: the nodes it started, their data
 * directories, and the process groups of the tasks they ran, which a node that was SIGKILLed
 * leaves running.
 */
export interface NodeDebris {
  /** The nodes started; each is killed at {@link NodeDebris.clear}. */
  readonly nodes: ChildNode[];
  /** The data directories made; each is removed at {@link NodeDebris.clear}. */
  readonly dataDirs: string[];
  /** The process groups of tasks seen running; each is SIGKILLed at {@link NodeDebris.clear}. */
  readonly groups: Set<number>;
  /** Makes a fresh data directory under the system's temporary directory and lists it for removal. */
  dataDir(prefix: string): Promise<string>;
  /** Lists a node that was started for killing, and returns it. */
  track<T extends ChildNode>(node: T): T;
  /** Kills the nodes and the task groups, then removes the data directories. */
  clear(): Promise<void>;
}

/** Makes the lists a test file fills as it goes, for its `afterAll(debris.clear)`. */
export function trackNodeDebris(): NodeDebris {
  const nodes: ChildNode[] = [];
  const dataDirs: string[] = [];
  const groups = new Set<number>();
  return {
    nodes,
    dataDirs,
    groups,
    async dataDir(prefix) {
      const dir = await mkdtemp(join(tmpdir(), prefix));
      dataDirs.push(dir);
      return dir;
    },
    track(node) {
      nodes.push(node);
      return node;
    },
    async clear() {
      for (const node of nodes) node.kill();
      for (const pgid of groups) {
        try {
          process.kill(-pgid, "SIGKILL");
        } catch {
          // gone already
        }
      }
      for (const dir of dataDirs) await rm(dir, { recursive: true, force: true });
    },
  };
}
