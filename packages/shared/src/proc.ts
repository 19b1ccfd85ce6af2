/**
 * A process's identity from /proc: with pid reuse, a pid alone may name another process than
 * the one recorded, but a pid and its start time (field 22 of /proc/<pid>/stat) do not. Used by
 * the agent to re-adopt its notebook server and by the sandbox helpers before they signal.
 * Node-only: imported as `@nbfleet/shared/proc`, not through the package's index.
 */
import { readFile } from "node:fs/promises";

export interface ProcStat {
  /** R, S, D, Z, T, ... */
  state: string;
  /** Start time in clock ticks since boot (field 22): with the pid, a process identity. */
  startTime: number;
}

export async function readProcStat(pid: number): Promise<ProcStat | null> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: fields after it follow the last ')'.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const state = fields[0];
    const startTime = Number(fields[19]);
    if (!state || !Number.isFinite(startTime)) return null;
    return { state, startTime };
  } catch {
    return null;
  }
}

/** True while `pid` runs (zombies count as gone) and, given a start time, is still that process. */
export async function isRunning(pid: number, startTime?: number): Promise<boolean> {
  const stat = await readProcStat(pid);
  if (!stat || stat.state === "Z" || stat.state === "X") return false;
  return startTime === undefined || stat.startTime === startTime;
}
