import { balancingString, resourceUsage, type HostSnapshot, type ResourceUsage } from "../executor/host-sampler.js";
import { SequenceLog } from "./sequence-log.js";

/** A periodic resource report (legacy notification 101). */
export interface ResourceReport {
  /** Sequence number, increasing by one per report on this node. */
  readonly seq: number;
  /** Unix ms of the host sample the report describes. */
  readonly at: number;
  /** The NODE_RESOURCE_USAGE figures. */
  readonly usage: ResourceUsage;
  /** The balancing string "cpu,iowait,vram,rram,disk,processes,threads,loadavg". */
  readonly balancing: string;
  /** The whole host sample. */
  readonly snapshot: HostSnapshot;
}

/**
 * The node's resource reports: one per host sample, numbered and kept in a bounded
 * history, so a watcher that resumes with its last number misses nothing still kept.
 */
export class ResourceLog extends SequenceLog<ResourceReport> {
  constructor(capacity = 1000) {
    super(capacity);
  }

  /** Appends a report for a host sample and wakes watchers. */
  publish(snapshot: HostSnapshot): ResourceReport {
    return this.append((seq) => ({ seq, at: snapshot.sampledAt || Date.now(), usage: resourceUsage(snapshot), balancing: balancingString(snapshot), snapshot }));
  }
}
