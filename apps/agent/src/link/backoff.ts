/**
 * Reconnect delays: exponential growth with full jitter (a random delay between 0 and the
 * ceiling), so a fleet that lost its controller does not come back in one wave.
 */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

export class Backoff {
  private attempt = 0;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  /** The ceiling the next delay is drawn under. */
  ceiling(capMs = this.policy.maxMs): number {
    return Math.min(capMs, this.policy.initialMs * 2 ** Math.min(this.attempt, 52));
  }

  /** The next delay, drawn under a ceiling that doubles per attempt up to `capMs`. */
  next(capMs = this.policy.maxMs): number {
    const delay = this.draw(capMs);
    this.attempt++;
    return delay;
  }

  /** A delay under the current ceiling, which stays where it is (more tries of the same round). */
  draw(capMs = this.policy.maxMs): number {
    return Math.floor(this.random() * this.ceiling(capMs));
  }

  /** A delay between half and all of `capMs`: for refusals that will not clear up in seconds. */
  slow(capMs: number): number {
    this.attempt++;
    return Math.floor(capMs / 2 + (this.random() * capMs) / 2);
  }

  reset(): void {
    this.attempt = 0;
  }
}
