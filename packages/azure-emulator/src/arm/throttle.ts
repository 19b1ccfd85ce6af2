/**
 * Subscription request limits the way Resource Manager applies them today: a token bucket per
 * subscription for writes and one for reads, reported in `x-ms-ratelimit-remaining-subscription-
 * {writes,reads}` and answered with 429 + Retry-After when empty. Defaults are Azure's
 * documented buckets (writes 200, refill 10/s; reads 250, refill 25/s).
 */
export interface BucketLimits {
  capacity: number;
  refillPerSec: number;
}

export interface ThrottleLimits {
  writes: BucketLimits;
  reads: BucketLimits;
}

export const AZURE_LIMITS: ThrottleLimits = {
  writes: { capacity: 200, refillPerSec: 10 },
  reads: { capacity: 250, refillPerSec: 25 },
};

interface Bucket {
  tokens: number;
  at: number;
}

export class Throttle {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly limits: ThrottleLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one token; returns what is left, or the wait in ms when the bucket is empty. */
  take(subscription: string, kind: "writes" | "reads"): { remaining: number } | { retryAfterMs: number } {
    const limits = this.limits[kind];
    const key = `${subscription.toLowerCase()}/${kind}`;
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: limits.capacity, at: now };
    bucket.tokens = Math.min(
      limits.capacity,
      bucket.tokens + ((now - bucket.at) / 1000) * limits.refillPerSec,
    );
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1)
      return { retryAfterMs: Math.ceil(((1 - bucket.tokens) / limits.refillPerSec) * 1000) };
    bucket.tokens -= 1;
    return { remaining: Math.floor(bucket.tokens) };
  }
}
