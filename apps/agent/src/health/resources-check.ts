/**
 * The `resources` check: memory and disk fullness (warn at 90 %, fail at 98 %) and CPU load.
 * CPU load only warns, and only when the run queue is twice the cores: a notebook busy with
 * a long computation is doing its job, not degraded.
 *
 * The disks are those of the agent's data directory (its state, logs and profile) and of the
 * notebook directory, each measured once, by blocks and by inodes. The agent's own writes that
 * keep failing count too: a full disk fails them before statfs may say 98 %.
 */
import { stat, statfs } from "node:fs/promises";
import os from "node:os";
import type { CheckStatus, HealthCheck } from "@nbfleet/shared";
import { checkResult, describeError } from "./result.js";
import type { CheckTarget } from "./target.js";

export const USAGE_WARN_PERCENT = 90;
export const USAGE_FAIL_PERCENT = 98;
export const LOAD_PER_CORE_WARN = 2;

export interface DiskStats {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  /** Inodes in all and free; 0 or absent where the filesystem does not count them. */
  files?: number;
  ffree?: number;
}

/** Errors that mean the disk (not the agent) refuses writes. */
const DISK_FULL_CODES = new Set(["ENOSPC", "EDQUOT", "EROFS", "EIO", "EFBIG"]);

/** The machine as the check sees it; tests pass their own numbers. */
export interface ResourceProbe {
  loadavg(): number[];
  cpuCount(): number;
  freemem(): number;
  totalmem(): number;
  statfs(path: string): Promise<DiskStats>;
  /** Which filesystem a path is on, so one disk is measured once; absent: every path is its own. */
  device?(path: string): Promise<number>;
}

export const systemResources: ResourceProbe = {
  loadavg: () => os.loadavg(),
  cpuCount: () => os.availableParallelism(),
  freemem: () => os.freemem(),
  totalmem: () => os.totalmem(),
  statfs: (path) => statfs(path),
  device: async (path) => (await stat(path)).dev,
};

export function usageStatus(percent: number): CheckStatus {
  if (percent >= USAGE_FAIL_PERCENT) return "fail";
  if (percent >= USAGE_WARN_PERCENT) return "warn";
  return "pass";
}

const round1 = (n: number) => Math.round(n * 10) / 10;

export async function checkResources(
  target: Pick<CheckTarget, "diskPath" | "dataDir" | "writeProblems">,
  now = new Date(),
  probe: ResourceProbe = systemResources,
): Promise<HealthCheck> {
  const findings: { status: CheckStatus; message: string }[] = [];

  const cores = Math.max(1, probe.cpuCount());
  const load1 = probe.loadavg()[0] ?? 0;
  const loadPerCore = load1 / cores;
  if (loadPerCore >= LOAD_PER_CORE_WARN) {
    findings.push({ status: "warn", message: `cpu overloaded: load ${round1(load1)} on ${cores} cores` });
  }

  const totalBytes = probe.totalmem();
  const freeBytes = probe.freemem();
  const memoryPercent = totalBytes > 0 ? (100 * (totalBytes - freeBytes)) / totalBytes : 0;
  const memoryStatus = usageStatus(memoryPercent);
  if (memoryStatus !== "pass") {
    findings.push({ status: memoryStatus, message: `memory ${round1(memoryPercent)} % used` });
  }

  const data: Record<string, unknown> = {
    cpu: { cores, load1: round1(load1), loadPerCore: Math.round(loadPerCore * 100) / 100 },
    memory: { totalBytes, freeBytes, usedPercent: round1(memoryPercent) },
  };

  const disks: Record<string, unknown>[] = [];
  for (const path of await distinctDisks([target.dataDir, target.diskPath], probe)) {
    try {
      const measured = measureDisk(path, await probe.statfs(path));
      disks.push(measured.data);
      findings.push(...measured.findings);
    } catch (error) {
      findings.push({
        status: "warn",
        message: `cannot measure the disk of ${path}: ${describeError(error)}`,
      });
    }
  }
  if (disks.length > 0) data.disk = disks[0];
  if (disks.length > 1) data.disks = disks;
  const problems = target.writeProblems ?? [];
  if (problems.length > 0) {
    data.writeProblems = problems;
    for (const problem of problems) {
      findings.push({
        status: DISK_FULL_CODES.has(problem.code) ? "fail" : "warn",
        message: `the agent cannot write its ${problem.what} (${problem.file}): ${problem.code}, ${problem.failures} failure(s) since ${problem.since}`,
      });
    }
  }
  if (findings.length === 0) {
    return checkResult("resources", "pass", "cpu, memory and disk are fine", now, data);
  }
  const status = findings.some((f) => f.status === "fail") ? "fail" : "warn";
  return checkResult("resources", status, findings.map((f) => f.message).join("; "), now, data);
}

function measureDisk(
  path: string,
  disk: DiskStats,
): { data: Record<string, unknown>; findings: { status: CheckStatus; message: string }[] } {
  const findings: { status: CheckStatus; message: string }[] = [];
  // As df counts it: blocks reserved for root are neither used nor available.
  const used = disk.blocks - disk.bfree;
  const usable = used + disk.bavail;
  const percent = usable > 0 ? (100 * used) / usable : 0;
  const data: Record<string, unknown> = {
    path,
    totalBytes: disk.blocks * disk.bsize,
    availableBytes: disk.bavail * disk.bsize,
    usedPercent: round1(percent),
  };
  const status = usageStatus(percent);
  if (status !== "pass") findings.push({ status, message: `disk of ${path} ${round1(percent)} % used` });
  if (disk.files && disk.ffree !== undefined) {
    const inodePercent = (100 * (disk.files - disk.ffree)) / disk.files;
    data.inodesUsedPercent = round1(inodePercent);
    const inodeStatus = usageStatus(inodePercent);
    if (inodeStatus !== "pass") {
      findings.push({ status: inodeStatus, message: `inodes of ${path} ${round1(inodePercent)} % used` });
    }
  }
  return { data, findings };
}

/** The given paths less those on a filesystem already listed (the first path names a disk). */
async function distinctDisks(paths: (string | undefined)[], probe: ResourceProbe): Promise<string[]> {
  const seen = new Set<number>();
  const result: string[] = [];
  for (const path of new Set(paths.filter((p): p is string => p !== undefined))) {
    const device = await probe.device?.(path).catch(() => undefined);
    if (device !== undefined) {
      if (seen.has(device)) continue;
      seen.add(device);
    }
    result.push(path);
  }
  return result;
}
