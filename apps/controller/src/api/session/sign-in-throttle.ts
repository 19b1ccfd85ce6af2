/**
 * Failed console sign-ins per client address: after `maxFailures` in a window, every failed
 * sign-in from that address answers 429 until the window ends. A valid token is looked up first
 * and always let through, since many clients may share an address (a NAT, a load balancer).
 * Tokens are 32 random bytes, so this is not what keeps them safe; it slows a flood of guesses
 * and marks it in the answers. Per replica, in memory.
 */
export interface ThrottleOptions {
  maxFailures: number;
  windowMs: number;
  /** Addresses tracked at most; beyond, the oldest windows are forgotten first. */
  maxAddresses: number;
}

export const SIGN_IN_THROTTLE: ThrottleOptions = { maxFailures: 10, windowMs: 60_000, maxAddresses: 10_000 };

export class SignInThrottle {
  private readonly windows = new Map<string, { start: number; failures: number }>();

  constructor(
    private readonly options: ThrottleOptions = SIGN_IN_THROTTLE,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until this address may try again, or 0 when it may now. */
  retryAfterSec(address: string): number {
    const window = this.current(address);
    if (!window || window.failures < this.options.maxFailures) return 0;
    return Math.max(1, Math.ceil((window.start + this.options.windowMs - this.now()) / 1000));
  }

  recordFailure(address: string): void {
    const window = this.current(address) ?? { start: this.now(), failures: 0 };
    window.failures += 1;
    this.windows.delete(address);
    this.windows.set(address, window);
    // Maps iterate in insertion order: the first entries are the oldest windows.
    for (const key of this.windows.keys()) {
      if (this.windows.size <= this.options.maxAddresses) break;
      this.windows.delete(key);
    }
  }

  private current(address: string) {
    const window = this.windows.get(address);
    if (window && this.now() - window.start >= this.options.windowMs) {
      this.windows.delete(address);
      return undefined;
    }
    return window;
  }
}
