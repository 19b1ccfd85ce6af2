/** RSS and CPU time of a process (and, optionally, its descendants) from /proc. */
import { readFile, readdir } from "node:fs/promises";

const CLOCK_TICKS = 100;

export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
}

/** User + system CPU seconds the process has used so far. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/**
 * Seconds the process's main thread (a Node event loop) spent runnable but waiting for a CPU:
 * how much of its latency other processes on the machine caused.
 */
export async function runQueueWaitSeconds(pid: number): Promise<number> {
  const schedstat = await readFile(`/proc/${pid}/schedstat`, "utf8");
  return Number(schedstat.split(" ")[1]) / 1e9;
}

/** Pids whose parent chain leads to `root` (the process itself included). */
export async function processTree(root: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    parents.set(Number(entry), ppid);
  }
  return [...parents.keys()].filter((pid) => {
    for (let p: number | undefined = pid; p && p > 1; p = parents.get(p)) if (p === root) return true;
    return false;
  });
}
