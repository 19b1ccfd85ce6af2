/**
 * The `resources` check: memory and disk fullness (warn at 90 %, fail at 98 %) and CPU load.
 * CPU load only warns, and only when the run queue is twice the cores: a notebook busy with
 * a long computation is doing its job, not degraded.
 */
import { statfs } from "node:fs/promises";
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
}

/** The machine as the check sees it; tests pass their own numbers. */
export interface ResourceProbe {
  loadavg(): number[];
  cpuCount(): number;
  freemem(): number;
  totalmem(): number;
  statfs(path: string): Promise<DiskStats>;
}

export const systemResources: ResourceProbe = {
  loadavg: () => os.loadavg(),
  cpuCount: () => os.availableParallelism(),
  freemem: () => os.freemem(),
  totalmem: () => os.totalmem(),
  statfs: (path) => statfs(path),
};

export function usageStatus(percent: number): CheckStatus {
  if (percent >= USAGE_FAIL_PERCENT) return "fail";
  if (percent >= USAGE_WARN_PERCENT) return "warn";
  return "pass";
}

const round1 = (n: number) => Math.round(n * 10) / 10;

export async function checkResources(
  target: Pick<CheckTarget, "diskPath">,
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

  try {
    const disk = await probe.statfs(target.diskPath);
    // As df counts it: blocks reserved for root are neither used nor available.
    const used = disk.blocks - disk.bfree;
    const usable = used + disk.bavail;
    const diskPercent = usable > 0 ? (100 * used) / usable : 0;
    data.disk = {
      path: target.diskPath,
      totalBytes: disk.blocks * disk.bsize,
      availableBytes: disk.bavail * disk.bsize,
      usedPercent: round1(diskPercent),
    };
    const diskStatus = usageStatus(diskPercent);
    if (diskStatus !== "pass") {
      findings.push({
        status: diskStatus,
        message: `disk of ${target.diskPath} ${round1(diskPercent)} % used`,
      });
    }
  } catch (error) {
    findings.push({
      status: "warn",
      message: `cannot measure the disk of ${target.diskPath}: ${describeError(error)}`,
    });
  }

  if (findings.length === 0) {
    return checkResult("resources", "pass", "cpu, memory and disk are fine", now, data);
  }
  const status = findings.some((f) => f.status === "fail") ? "fail" : "warn";
  return checkResult("resources", status, findings.map((f) => f.message).join("; "), now, data);
}
