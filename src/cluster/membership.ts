import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { readFile } from "node:fs/promises";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { HostFactsSchema, type HostFacts, type ResourceUsage as ProtoUsage } from "../../gen/drce/v1/node_service_pb.js";
import { DrceError } from "../domain/errors.js";
import { usageFigures, type UsageFigure } from "../domain/placement.js";
import type { Logger } from "../logger.js";
import { writeFileAtomic } from "../store/atomic.js";
import type { FleetTransport, NodeAddress } from "./fleet-transport.js";

/** What a manager knows of a data node's health. */
export type MemberState = "up" | "suspect" | "down";

/** A data node's load at one moment, as a poll or a heartbeat reports it. */
export interface MemberReport {
  /** The eight figures, percent. */
  readonly usage: Readonly<Record<UsageFigure, number>>;
  /** The balancing string. */
  readonly balancing: string;
  /** Free execution slots. */
  readonly freeSlots: number;
  /** Tasks running. */
  readonly running: number;
}

/** One data node of the cluster. */
export interface Member extends NodeAddress, MemberReport {
  /** Labels (--label key=value). */
  readonly labels: Readonly<Record<string, string>>;
  /** True for a node that joined by itself, false for one listed with --node. */
  readonly joined: boolean;
  /** Health, from the time since it was last heard from. */
  readonly state: MemberState;
  /** When it last answered or sent a heartbeat, Unix ms; zero: never. */
  readonly lastSeen: number;
  /** Its host facts, once known. */
  readonly facts: HostFacts | undefined;
  /** Tasks the manager placed on it since the manager's data directory was made. */
  readonly tasksPlaced: number;
}

/** What a joining node says about itself. */
export interface Registration {
  readonly name: string;
  readonly url: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly facts: HostFacts | undefined;
  readonly report: MemberReport | undefined;
}

/** Options of {@link createMembership}. */
export interface MembershipOptions {
  /** The manager's data directory; the node list is kept in `<dataDir>/cluster/nodes.json`. */
  readonly dataDir: string;
  /** URLs of the nodes listed with --node, polled every heartbeat. */
  readonly listed: readonly string[];
  /** Interval of polls and of the heartbeats joined nodes keep, ms. */
  readonly heartbeatMs: number;
  /** Silence after which a node is down, ms. */
  readonly nodeTimeoutMs: number;
  /** How the polls reach the listed nodes. */
  readonly transport: FleetTransport;
  readonly logger: Logger;
  /** The clock; Date.now unless a test gives another. */
  readonly now?: () => number;
}

/** The cluster's node list: listed nodes polled, joined nodes heard from, and each one's state. */
export interface Membership {
  /** Loads the kept node list and starts the polls and the state clock. */
  start(): Promise<void>;
  /** Every node, in name order. */
  members(): readonly Member[];
  /** A node by name. */
  get(name: string): Member | undefined;
  /** Joins a node or updates it; a name held by another URL that is up is "exists". */
  register(registration: Registration): Promise<void>;
  /** A joined node's heartbeat; an unknown name is "not-found" (the node registers again). */
  heartbeat(name: string, report: MemberReport | undefined): void;
  /** Counts a task placed on a node. */
  placed(name: string): void;
  /** Calls `listener` with each node whose state changed, with its state before. */
  onChange(listener: (member: Member, before: MemberState | undefined) => void): void;
  /** Stops the polls and the clock and writes the list once more. */
  close(): Promise<void>;
}

/** The zero report of a node not heard from yet. */
const emptyReport: MemberReport = { usage: Object.fromEntries(usageFigures.map((f) => [f, 0])) as Record<UsageFigure, number>, balancing: "", freeSlots: 0, running: 0 };

/** Reads the eight figures of a proto ResourceUsage. */
export function usageFromProto(usage: ProtoUsage | undefined): Record<UsageFigure, number> {
  return Object.fromEntries(usageFigures.map((f) => [f, usage?.[f] ?? 0])) as Record<UsageFigure, number>;
}

/** The kept form of a member. */
interface KeptMember extends Omit<Member, "facts" | "state"> {
  readonly facts?: JsonValue;
}

/**
 * Creates the node list. A node is up when heard from within two heartbeats (it missed none),
 * suspect after that, down after --node-timeout-ms of silence, and up again the moment it is
 * heard from. Listed nodes are polled every heartbeat (GetNodeInfo for their name the first
 * time, then one ListNodes for their load, which a data node answers for itself with its usage
 * and balancing string, GetHostFacts once); joined nodes send their own heartbeats. The list
 * (names, URLs, labels, facts, last reports) is written to the data directory atomically when
 * a node joins or changes state, and read back at start.
 */
export function createMembership(options: MembershipOptions): Membership {
  const { heartbeatMs, nodeTimeoutMs, transport, logger } = options;
  if (!(heartbeatMs > 0)) throw new TypeError("createMembership: heartbeatMs must be positive");
  if (!(nodeTimeoutMs > 0)) throw new TypeError("createMembership: nodeTimeoutMs must be positive");
  const now = options.now ?? Date.now;
  const dir = join(options.dataDir, "cluster");
  const file = join(dir, "nodes.json");
  const nodes = new Map<string, Member>();
  // Listed URLs whose node name is not known yet (never answered GetNodeInfo).
  const listedNames = new Map<string, string>();
  const listeners: ((member: Member, before: MemberState | undefined) => void)[] = [];
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let writing: Promise<void> = Promise.resolve();
  let dirty = false;

  const stateOf = (lastSeen: number): MemberState => {
    const silent = now() - lastSeen;
    // Up until a whole heartbeat was missed: the next beat is due one interval after the last, plus its own round trip.
    if (lastSeen > 0 && silent <= heartbeatMs * 2) return "up";
    return silent >= nodeTimeoutMs || lastSeen === 0 ? "down" : "suspect";
  };

  const persist = (): void => {
    dirty = true;
    writing = writing.then(async () => {
      if (!dirty) return;
      dirty = false;
      const kept: KeptMember[] = [...nodes.values()].map(({ facts, state: _state, ...rest }) => ({ ...rest, ...(facts === undefined ? {} : { facts: toJson(HostFactsSchema, facts) }) }));
      try {
        await writeFileAtomic(file, JSON.stringify(kept));
      } catch (error) {
        logger.error({ err: String(error) }, "the node list could not be written to the data directory");
      }
    });
  };

  const set = (member: Member): void => {
    const before = nodes.get(member.name);
    nodes.set(member.name, member);
    if (before?.state !== member.state) {
      logger.info({ node: member.name, url: member.url, state: member.state, before: before?.state }, "cluster node state");
      for (const listener of listeners) listener(member, before?.state);
      persist();
    }
  };

  const heard = (name: string, change: Partial<Member>): void => {
    const member = nodes.get(name);
    if (member === undefined) return;
    set({ ...member, ...change, lastSeen: now(), state: "up" });
  };

  const tick = (): void => {
    for (const member of nodes.values()) {
      const state = stateOf(member.lastSeen);
      if (state !== member.state) set({ ...member, state });
    }
  };

  const polling = new Set<string>();
  const poll = async (url: string): Promise<void> => {
    // A poll still waiting for a slow node is not doubled.
    if (polling.has(url)) return;
    polling.add(url);
    try {
      let name = listedNames.get(url);
      const probe: NodeAddress = { name: name ?? `listed:${url}`, url };
      if (name === undefined) {
        const info = await transport.nodes(probe).getNodeInfo({}, { timeoutMs: heartbeatMs });
        name = info.info?.name ?? url;
        transport.forget(probe.name);
        listedNames.set(url, name);
        const held = nodes.get(name);
        if (held !== undefined && held.url !== url && held.state === "up") {
          logger.error({ node: name, url, heldBy: held.url }, "a listed node has the name of another node that is up; it is not used");
          listedNames.delete(url);
          return;
        }
        nodes.set(name, { ...(held ?? { ...emptyReport, labels: {}, facts: undefined, tasksPlaced: 0, lastSeen: 0, state: "down" }), name, url, joined: false } as Member);
        persist();
      }
      const address = { name, url };
      const client = transport.nodes(address);
      // A data node's ListNodes answers for itself with its usage and balancing string: one
      // call per poll, not two, since every call costs each of 20 idle nodes CPU that a
      // fan-out to them then waits for. A listed node answering for others (a manager)
      // is asked for its own usage as well.
      const self = await client.listNodes({}, { timeoutMs: heartbeatMs });
      const me = self.nodes[0];
      const own = me !== undefined && me.name === name && me.usage !== undefined ? { usage: me.usage, balancing: me.balancing } : await client.getResourceUsage({}, { timeoutMs: heartbeatMs });
      const change: { -readonly [K in keyof Member]?: Member[K] } = {
        usage: usageFromProto(own.usage),
        balancing: own.balancing,
        freeSlots: me?.freeSlots ?? 0,
        running: me?.running ?? 0,
        ...(me === undefined ? {} : { labels: { ...me.labels } }),
      };
      if (nodes.get(name)?.facts === undefined) {
        const facts = await client.getHostFacts({}, { timeoutMs: heartbeatMs });
        change.facts = facts.facts;
        persist();
      }
      heard(name, change);
    } catch (error) {
      logger.debug({ url, err: String(error) }, "a listed node did not answer its poll");
    } finally {
      polling.delete(url);
    }
  };

  /**
   * Whether the node holding a name still answers at its URL under that name. A node that
   * restarts at another address (a new port) registers again before its old entry turns
   * suspect; its old address then refuses the connection or is another node's, and the name
   * passes to the newcomer. Only a holder that answers as itself keeps its name.
   */
  const holderAnswers = async (held: Member): Promise<boolean> => {
    const probe: NodeAddress = { name: `holder:${held.url}`, url: held.url };
    try {
      const info = await transport.nodes(probe).getNodeInfo({}, { timeoutMs: Math.min(heartbeatMs, 1000) });
      return info.info?.name === held.name;
    } catch {
      // Unreachable (refused, reset, timed out): the holder is gone from that address.
      return false;
    } finally {
      transport.forget(probe.name);
    }
  };

  return {
    async start() {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      let kept: KeptMember[] = [];
      try {
        kept = JSON.parse(await readFile(file, "utf8")) as KeptMember[];
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") logger.warn({ err: String(error) }, "the kept node list could not be read; starting with the listed nodes only");
      }
      for (const item of kept) {
        const { facts, ...rest } = item;
        nodes.set(item.name, { ...rest, facts: facts === undefined ? undefined : fromJson(HostFactsSchema, facts), state: stateOf(item.lastSeen) });
        if (!item.joined) listedNames.set(item.url, item.name);
      }
      const round = (): void => {
        tick();
        for (const url of options.listed) void poll(url);
      };
      round();
      // The clock runs at a fraction of the heartbeat so that a state changes soon after its time.
      let sinceRound = 0;
      const step = Math.max(50, Math.min(500, Math.floor(heartbeatMs / 4)));
      timer = setInterval(() => {
        sinceRound += step;
        if (sinceRound >= heartbeatMs) {
          sinceRound = 0;
          round();
        } else tick();
      }, step);
      timer.unref();
    },
    members: () => [...nodes.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    get: (name) => nodes.get(name),
    async register(registration) {
      if (closed) throw new DrceError("unavailable", "the manager is shutting down");
      const held = nodes.get(registration.name);
      if (held !== undefined && held.url !== registration.url && held.state === "up" && (await holderAnswers(held))) {
        throw new DrceError("exists", `node name ${registration.name} is held by ${held.url}, which is up`);
      }
      if (held !== undefined && held.url !== registration.url) transport.forget(registration.name);
      const member: Member = {
        ...(held ?? { tasksPlaced: 0 }),
        ...(registration.report ?? emptyReport),
        name: registration.name,
        url: registration.url,
        labels: { ...registration.labels },
        joined: true,
        facts: registration.facts ?? held?.facts,
        lastSeen: now(),
        state: "up",
      } as Member;
      set(member);
      persist();
      await writing;
    },
    heartbeat(name, report) {
      const member = nodes.get(name);
      if (member === undefined || !member.joined) throw new DrceError("not-found", `node ${name} is not registered with this manager`);
      heard(name, report ?? {});
    },
    placed(name) {
      const member = nodes.get(name);
      if (member === undefined) return;
      nodes.set(name, { ...member, tasksPlaced: member.tasksPlaced + 1 });
    },
    onChange(listener) {
      listeners.push(listener);
    },
    async close() {
      closed = true;
      clearInterval(timer);
      persist();
      await writing;
    },
  };
}
