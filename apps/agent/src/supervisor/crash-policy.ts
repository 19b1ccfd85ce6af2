/**
 * When to restart a crashed notebook server and when to give up: exponential backoff from
 * initialBackoffMs doubling to maxBackoffMs, reset after stableMs of uptime; maxCrashes inside
 * crashWindowMs → give up. Pure, so it is tested without processes or clocks.
 */
import type { RestartPolicy } from "../config/settings.js";

export type CrashDecision = { action: "restart"; delayMs: number } | { action: "give_up"; crashes: number };

export class CrashPolicy {
  private crashTimes: number[] = [];
  private consecutive = 0;

  constructor(private readonly policy: RestartPolicy) {}

  /** Records a crash of a server that had been up since `startedAt` (ms), at `now` (ms). */
  onCrash(startedAt: number | null, now: number): CrashDecision {
    if (startedAt !== null && now - startedAt >= this.policy.stableMs) this.consecutive = 0;
    this.crashTimes = this.crashTimes.filter((t) => now - t < this.policy.crashWindowMs);
    this.crashTimes.push(now);
    if (this.crashTimes.length >= this.policy.maxCrashes) {
      return { action: "give_up", crashes: this.crashTimes.length };
    }
    const delayMs = Math.min(this.policy.initialBackoffMs * 2 ** this.consecutive, this.policy.maxBackoffMs);
    this.consecutive += 1;
    return { action: "restart", delayMs };
  }

  /** An operator start or restart wipes the slate. */
  reset(): void {
    this.crashTimes = [];
    this.consecutive = 0;
  }
}
