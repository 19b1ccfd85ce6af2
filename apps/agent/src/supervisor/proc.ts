/** Facts about a process from /proc, enough to tell "still the server we started" from pid reuse. */
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

export async function isRunning(pid: number, startTime?: number): Promise<boolean> {
  const stat = await readProcStat(pid);
  if (!stat || stat.state === "Z" || stat.state === "X") return false;
  return startTime === undefined || stat.startTime === startTime;
}

export async function commandLine(pid: number): Promise<string | null> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, "utf8");
    return raw.split("\0").filter(Boolean).join(" ");
  } catch {
    return null;
  }
}
