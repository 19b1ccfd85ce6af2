/** Facts about a process from /proc: its identity (shared with the sandbox helpers) and its command line. */
import { readFile } from "node:fs/promises";

export { type ProcStat, isRunning, readProcStat } from "@nbfleet/shared/proc";

export async function commandLine(pid: number): Promise<string | null> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, "utf8");
    return raw.split("\0").filter(Boolean).join(" ");
  } catch {
    return null;
  }
}
