/*
 * The legacy admin commands by what a drce data node does with them: the commands it
 * serves, those of the original nodes that mean nothing here (each with its reason), and the
 * handlers a message may name.
 */

/**
 * The legacy admin commands that report the node's figures. PROPERTIES and STAT both give the
 * NODE_MSG_PROPERTIES statistics; NODE_INFO gives the node's identity and limits. Every
 * command drce serves is in {@link servedAdminCommands}.
 */
export const adminCommands = ["DRCE_GET_TASKS", "DRCE_GET_TASKS_INFO", "NODE_RESOURCE_USAGE", "PROPERTIES", "STAT", "NODE_INFO", "ECHO"] as const;

/** One of {@link adminCommands}. */
export type AdminCommand = (typeof adminCommands)[number];

/** The handlers of an original data node; drce answers for each of them. */
export const dataNodeHandlers = ["Admin", "DataProcessorData", "DataClientData"] as const;

/** Handlers of original routers and managers: a drce data node has none of them. */
export const managerHandlers = ["RouterServerProxy", "DataServerProxy", "DataClientProxy", "DataReducerProxy"] as const;

/**
 * Commands of the original nodes that mean nothing on a drce data node, each with the reason
 * given in its ERROR reply.
 */
export const inapplicableCommands: Readonly<Record<string, string>> = {
  HEARTBEAT_DELAY_GET: "a drce data node sends no heartbeats",
  HEARTBEAT_DELAY_SET: "a drce data node sends no heartbeats",
  HEARTBEAT_TIMEOUT_GET: "a drce data node sends no heartbeats",
  HEARTBEAT_TIMEOUT_SET: "a drce data node sends no heartbeats",
  HEARTBEAT_MODE_GET: "a drce data node sends no heartbeats",
  HEARTBEAT_MODE_SET: "a drce data node sends no heartbeats",
  MMGET: "a drce data node has no manager mode",
  MMSET: "a drce data node has no manager mode",
  MPMGET: "a drce data node has no manager purge mode",
  MPMSET: "a drce data node has no manager purge mode",
  MRCSGET: "a drce data node collects no resource usage of other nodes",
  MRCSSET: "a drce data node collects no resource usage of other nodes",
  POLL_TIMEOUT_GET: "drce sockets are event driven and have no poll timeout",
  POLL_TIMEOUT_SET: "drce sockets are event driven and have no poll timeout",
  PROPERTY_INTERVAL_SET: "the sample interval is fixed at start (--sample-interval-ms)",
  DUMP_INTERVAL_GET: "drce writes every task state to disk as it changes, with no periodic dump",
  DUMP_INTERVAL_SET: "drce writes every task state to disk as it changes, with no periodic dump",
  NODE_ROUTES: "a drce data node routes nothing",
  NODE_RECOVER_NOTIFICATION_CONNECTION: "drce retries notifications by itself (--notify-url)",
  REBUILD_SERVER_CONNECTION: "a drce data node has no server connection to a manager",
  DISCONNECT_SERVER_CONNECTION: "a drce data node has no server connection to a manager",
  REBUILD_CLIENT_CONNECTION: "a drce data node has no client connection to a router",
  DISCONNECT_CLIENT_CONNECTION: "a drce data node has no client connection to a router",
  UPDATE_SCHEMA: "a drce data node has no cluster schema",
  SPHINX: "drce has no Sphinx search engine",
};

/** Every command that does something on a drce node (the others are in {@link inapplicableCommands}). */
export const servedAdminCommands = [
  ...adminCommands,
  "DRCE",
  "TIME",
  "RESET_STAT_COUNTERS",
  "DRCE_GET_HOST",
  "DRCE_SET_HOST",
  "DRCE_GET_PORT",
  "DRCE_SET_PORT",
  "LLGET",
  "LLSET",
  "PROPERTY_INTERVAL_GET",
  "SHUTDOWN",
] as const;

/** The log levels LLSET takes (pino's). */
export const logLevelNames = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
