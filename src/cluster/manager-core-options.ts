import type { Logger } from "../logger.js";
import type { FleetTransport } from "./fleet-transport.js";
import type { LastStates } from "./last-states.js";
import type { Membership } from "./membership.js";
import type { Placer } from "./placement.js";
import type { PlacementRecord } from "./placement-record.js";

/** Options of the manager's task core (see createManagerCore). */
export interface ManagerCoreOptions {
  readonly members: Membership;
  readonly transport: FleetTransport;
  readonly record: PlacementRecord;
  readonly placer: Placer;
  /** Task events kept for watchers that resume. */
  readonly eventHistory: number;
  readonly logger: Logger;
  /** Where the last known states of forwarded tasks are kept across restarts; in memory only without it. */
  readonly lastStates?: LastStates;
  /** Called with each forwarding's node and the milliseconds from the request to the node's reply (acceptance). */
  readonly onDispatch?: (node: string, ms: number) => void;
}
