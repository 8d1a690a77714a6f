import { readdirSync, readFileSync } from "node:fs";

/** One process as /proc/<pid>/stat tells it. */
export interface ProcStat {
  readonly pid: number;
  /** State letter: R, S, D, Z, ... */
  readonly state: string;
  readonly ppid: number;
  readonly pgid: number;
  /** The command name (comm). */
  readonly name: string;
}

/** Every process of the host that could be read, from /proc/<pid>/stat. */
export function allProcesses(): ProcStat[] {
  const processes: ProcStat[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // it exited while we looked
    }
    // Fields after the command name (which may hold spaces and parentheses): state, ppid, pgrp, ...
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    processes.push({ pid: Number(entry), state: rest[0] ?? "?", ppid: Number(rest[1]), pgid: Number(rest[2]), name: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) });
  }
  return processes;
}

/** Live (non-zombie) processes of a process group, read from /proc. */
export function liveGroupMembers(pgid: number): number[] {
  return allProcesses()
    .filter((p) => p.pgid === pgid && p.state !== "Z" && p.state !== "X")
    .map((p) => p.pid);
}
