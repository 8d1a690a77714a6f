/**
 * The messages between a node and its native spawner (native/spawner.c), on the socket
 * pair that is the spawner's fd 3. They say what the JSON messages of the Node.js spawner
 * say (spawner-protocol.ts), with one addition: a spawn may name control groups the
 * command is to run in from its first instruction. The standard streams travel as for the
 * Node.js spawner: three Unix socket connections per spawn, each opening with its
 * {@link streamHeader}.
 *
 * Every message is a frame: its length as an unsigned 32-bit little-endian number, then
 * that many bytes, the first of which is the message's type. Numbers are unsigned 32-bit
 * little-endian; a string is its length in bytes, then its UTF-8 bytes (no terminator);
 * a list is its count, then its strings.
 *
 * | type | direction | fields |
 * |---|---|---|
 * | `S` spawn | node → spawner | id, token (32 bytes), flags (1 byte: 1 uid given, 2 gid given), uid, gid, file, cwd, argv list (argv[0] first), environment list (`K=V`), control group list (directories) |
 * | `C` cancel | node → spawner | token (32 bytes) |
 * | `R` release | node → spawner | id |
 * | `r` ready | spawner → node | (none) |
 * | `s` spawned | spawner → node | id, pid, placement (1 byte, {@link Placement}), errno of a failed placement |
 * | `f` failed | spawner → node | id, errno name, message |
 * | `x` exit | spawner → node | id, exit code (0xffffffff when a signal ended it), signal number (0 for none) |
 */
import { constants } from "node:os";
import { tokenLength } from "./spawner-protocol.js";
import type { SpawnRequest } from "./spawner-types.js";

/** Where a spawned command's control groups stand, as the "spawned" answer says. */
export const Placement = {
  /** No group was asked for. */
  None: 0,
  /** Created in its group by clone3(CLONE_INTO_CGROUP). */
  Cloned: 1,
  /** Moved into its groups by itself before it executed the command. */
  Written: 2,
  /** The groups refused it: it runs in its process group only. */
  Failed: 3,
} as const;

/** One of {@link Placement}'s values. */
export type PlacementValue = (typeof Placement)[keyof typeof Placement];

/** A spawn as the native spawner takes it. */
export interface NativeSpawn extends Pick<SpawnRequest, "file" | "args" | "cwd" | "env" | "uid" | "gid"> {
  readonly id: number;
  readonly token: string;
  readonly cgroupDirs: readonly string[];
}

/** An answer of the native spawner. */
export type NativeAnswer =
  | { readonly type: "ready" }
  | { readonly type: "spawned"; readonly id: number; readonly pid: number; readonly placement: PlacementValue; readonly placementErrno: number }
  | { readonly type: "failed"; readonly id: number; readonly code: string; readonly message: string }
  | { readonly type: "exit"; readonly id: number; readonly code: number | null; readonly signal: NodeJS.Signals | null };

const signalNames = new Map<number, NodeJS.Signals>(Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]));

/** Builds frames from parts, counting their length once. */
class FrameWriter {
  private readonly parts: Buffer[] = [];
  private length = 0;

  byte(value: number): this {
    return this.push(Buffer.from([value]));
  }

  u32(value: number): this {
    const buffer = Buffer.allocUnsafe(4);
    buffer.writeUInt32LE(value >>> 0);
    return this.push(buffer);
  }

  bytes(value: string): this {
    return this.push(Buffer.from(value, "latin1"));
  }

  string(value: string): this {
    const buffer = Buffer.from(value, "utf8");
    return this.u32(buffer.length).push(buffer);
  }

  list(values: readonly string[]): this {
    this.u32(values.length);
    for (const value of values) this.string(value);
    return this;
  }

  frame(): Buffer {
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32LE(this.length);
    return Buffer.concat([head, ...this.parts], 4 + this.length);
  }

  private push(buffer: Buffer): this {
    this.parts.push(buffer);
    this.length += buffer.length;
    return this;
  }
}

/** The frame of a spawn (argv[0] is the file, as child_process sets it). */
export function spawnFrame(spawn: NativeSpawn): Buffer {
  if (spawn.token.length !== tokenLength) throw new RangeError(`a token has ${tokenLength} characters`);
  const flags = (spawn.uid === undefined ? 0 : 1) | (spawn.gid === undefined ? 0 : 2);
  return new FrameWriter()
    .byte(0x53)
    .u32(spawn.id)
    .bytes(spawn.token)
    .byte(flags)
    .u32(spawn.uid ?? 0)
    .u32(spawn.gid ?? 0)
    .string(spawn.file)
    .string(spawn.cwd)
    .list([spawn.file, ...spawn.args])
    .list(Object.entries(spawn.env).map(([name, value]) => `${name}=${value}`))
    .list(spawn.cgroupDirs)
    .frame();
}

/** The frame of a cancel: forget the spawn whose streams could not all connect. */
export function cancelFrame(token: string): Buffer {
  return new FrameWriter().byte(0x43).bytes(token).frame();
}

/** The frame of a release: the command of spawn `id` is accounted for. */
export function releaseFrame(id: number): Buffer {
  return new FrameWriter().byte(0x52).u32(id).frame();
}

/** Decodes one answer's payload (the bytes after the length); undefined for one not known. */
export function decodeAnswer(payload: Buffer): NativeAnswer | undefined {
  const type = payload[0];
  if (type === 0x72) return { type: "ready" };
  if (type === 0x73 && payload.length >= 14) {
    return { type: "spawned", id: payload.readUInt32LE(1), pid: payload.readUInt32LE(5), placement: payload[9] as PlacementValue, placementErrno: payload.readUInt32LE(10) };
  }
  if (type === 0x66 && payload.length >= 9) {
    const codeLength = payload.readUInt32LE(5);
    const code = payload.toString("utf8", 9, 9 + codeLength);
    const messageLength = payload.readUInt32LE(9 + codeLength);
    const message = payload.toString("utf8", 13 + codeLength, 13 + codeLength + messageLength);
    return { type: "failed", id: payload.readUInt32LE(1), code, message };
  }
  if (type === 0x78 && payload.length >= 13) {
    const code = payload.readUInt32LE(5);
    const signal = payload.readUInt32LE(9);
    return { type: "exit", id: payload.readUInt32LE(1), code: code === 0xffffffff ? null : code, signal: signal === 0 ? null : (signalNames.get(signal) ?? null) };
  }
  return undefined;
}

/**
 * Splits a byte stream into frames: feed it what arrives, it calls `onFrame` with each
 * complete payload (a view of its own copy).
 */
export function createFrameReader(onFrame: (payload: Buffer) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let at = 0;
    while (pending.length - at >= 4) {
      const length = pending.readUInt32LE(at);
      if (pending.length - at - 4 < length) break;
      onFrame(pending.subarray(at + 4, at + 4 + length));
      at += 4 + length;
    }
    pending = at === pending.length ? Buffer.alloc(0) : Buffer.from(pending.subarray(at));
  };
}
