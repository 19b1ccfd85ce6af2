/**
 * When the periodic round is deep (runs the kernel check). Every `deepCheckIntervalSec` as a
 * rule; a kernel check that failed is tried again after FAILED_KERNEL_RECHECK_MS, since its
 * failure makes the machine unhealthy until the next deep round: a kernel that was slow to start
 * on a loaded machine should not keep it out of a rolling operation for five minutes.
 */
import type { HealthCheck } from "@nbfleet/shared";

export const FAILED_KERNEL_RECHECK_MS = 30_000;

export function deepCheckDue(
  now: number,
  lastDeepCheck: number,
  intervalSec: number,
  lastKernelCheck: HealthCheck | undefined,
): boolean {
  if (intervalSec <= 0) return false;
  const interval = intervalSec * 1000;
  const wait = lastKernelCheck?.status === "fail" ? Math.min(interval, FAILED_KERNEL_RECHECK_MS) : interval;
  return now - lastDeepCheck >= wait;
}
