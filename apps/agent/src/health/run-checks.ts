/**
 * Runs the checks of one round. The process check goes first: when the server is not running
 * the network checks fail at once instead of each waiting for a timeout. The cheap checks run
 * side by side; the deep kernel check only when asked, else its last result is carried along.
 */
import { CHECK_NAMES, type CheckName, type HealthCheck } from "@nbfleet/shared";
import { checkActivity } from "./activity-check.js";
import { checkAuth } from "./auth-check.js";
import { checkHttps } from "./https-check.js";
import { checkKernel } from "./kernel-check.js";
import { checkProcess } from "./process-check.js";
import { checkResources } from "./resources-check.js";
import { checkResult } from "./result.js";
import type { CheckTarget } from "./target.js";
import { checkTls } from "./tls-check.js";

export interface RunChecksOptions {
  deep: boolean;
  /** The last kernel check, reported again when this round is not deep. */
  previousKernelCheck?: HealthCheck;
  now?: Date;
  /** Cancels the deep kernel check (its server is going away). */
  signal?: AbortSignal;
}

const NETWORK_CHECKS = ["https", "auth", "tls", "activity"] as const;

export async function runChecks(target: CheckTarget, options: RunChecksOptions): Promise<HealthCheck[]> {
  const now = options.now ?? new Date();
  const processCheck = await checkProcess(target, now);
  const running = processCheck.status !== "fail";
  const notRunning = (name: CheckName) => checkResult(name, "fail", "notebook not running", now);

  const pending: Promise<HealthCheck>[] = [Promise.resolve(processCheck), checkResources(target, now)];
  if (running) {
    pending.push(
      checkHttps(target, now),
      checkAuth(target, now),
      checkTls(target, now),
      checkActivity(target, now),
    );
    if (options.deep) pending.push(checkKernel(target, now, undefined, options.signal));
  } else {
    pending.push(...NETWORK_CHECKS.map((name) => Promise.resolve(notRunning(name))));
    if (options.deep || options.previousKernelCheck !== undefined)
      pending.push(Promise.resolve(notRunning("kernel")));
  }
  if (running && !options.deep && options.previousKernelCheck !== undefined) {
    pending.push(Promise.resolve(options.previousKernelCheck));
  }

  const checks = await Promise.all(pending);
  return checks.sort((a, b) => CHECK_NAMES.indexOf(a.name) - CHECK_NAMES.indexOf(b.name));
}
