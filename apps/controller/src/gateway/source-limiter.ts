/**
 * Failed agent authentications per source address: a token bucket each, in a map of bounded
 * size (the least recently failing address is forgotten first). It only ever limits failures:
 * an address whose secrets keep failing gets less and less answer, but a valid secret from the
 * same address is never refused — a notebook on the controller's own host (or anyone behind
 * the same NAT as the fleet) must not be able to lock the agents there out.
 */
export interface SourceLimiterOptions {
  /** Failures an address may have at once before it is limited. */
  burst: number;
  /** Failures an address earns back per second. */
  perSecond: number;
  /** Addresses remembered; past this the stalest is dropped. */
  maxSources: number;
}

export const DEFAULT_SOURCE_LIMITS: SourceLimiterOptions = { burst: 20, perSecond: 2, maxSources: 10_000 };

interface Bucket {
  tokens: number;
  at: number;
}

export class SourceLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly options: SourceLimiterOptions = DEFAULT_SOURCE_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts a failure of `source`; false when the source is over its allowance. */
  fail(source: string): boolean {
    const now = this.now();
    const { burst, perSecond, maxSources } = this.options;
    const known = this.buckets.get(source);
    const bucket = known ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
    bucket.at = now;
    // Re-inserted: the map's order is then least recently failing first.
    if (known) this.buckets.delete(source);
    this.buckets.set(source, bucket);
    if (this.buckets.size > maxSources) this.buckets.delete(this.buckets.keys().next().value!);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }
}
