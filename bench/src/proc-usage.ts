/** RSS and CPU time of a process (and, optionally, its descendants) from /proc. */
import { readFileSync } from "node:fs";
import { readFile, readdir } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";

const CLOCK_TICKS = 100;

export const rssBytes = (pid: number) => statusKB(pid, "VmRSS");

/** The most the process has had resident since it started (the kernel's high-water mark). */
export const peakRssBytes = (pid: number) => statusKB(pid, "VmHWM");

async function statusKB(pid: number, field: string): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const value = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1];
  if (value === undefined) throw new Error(`no ${field} in /proc/${pid}/status (has it exited?)`);
  return Number(value) * 1024;
}

export interface RssSample {
  /** performance.now() of the sample. */
  at: number;
  bytes: number;
}

/** Samples the process's RSS every `everyMs` from now until `stop()`, which returns the samples. */
export function sampleRss(pid: number, everyMs: number): { stop(): RssSample[] } {
  const samples: RssSample[] = [];
  let running = true;
  void (async () => {
    while (running) {
      const bytes = await rssBytes(pid).catch(() => undefined);
      if (bytes !== undefined) samples.push({ at: performance.now(), bytes });
      await sleep(everyMs);
    }
  })();
  return {
    stop() {
      running = false;
      return samples;
    },
  };
}

/**
 * Starts a window; the function it returns gives the % of the machine's CPU time (all CPUs,
 * from /proc/stat) the hypervisor gave to other guests since: time this virtual machine's
 * runnable threads waited for a physical CPU, on top of waiting for each other (steal).
 */
export function stealWindow(): () => number {
  const from = machineCpuTimes();
  return () => {
    const to = machineCpuTimes();
    const total = to.total - from.total;
    return total > 0 ? ((to.steal - from.steal) / total) * 100 : 0;
  };
}

function machineCpuTimes(): { total: number; steal: number } {
  // user nice system idle iowait irq softirq steal (guest time is already counted in user).
  const fields = readFileSync("/proc/stat", "utf8")
    .split("\n", 1)[0]!
    .trim()
    .split(/\s+/)
    .slice(1, 9)
    .map(Number);
  return { total: fields.reduce((sum, n) => sum + n, 0), steal: fields[7]! };
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
