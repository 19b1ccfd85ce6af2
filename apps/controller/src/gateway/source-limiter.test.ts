import { describe, expect, it } from "vitest";
import { SourceLimiter } from "./source-limiter.js";

describe("SourceLimiter", () => {
  it("allows a burst of failures per address, then one per refill interval", () => {
    let now = 0;
    const limiter = new SourceLimiter({ burst: 3, perSecond: 2, maxSources: 10 }, () => now);
    expect([1, 2, 3, 4].map(() => limiter.fail("10.0.0.1"))).toEqual([true, true, true, false]);
    // Another address has its own allowance.
    expect(limiter.fail("10.0.0.2")).toBe(true);
    // Two a second come back: one after 500 ms, not before.
    now += 499;
    expect(limiter.fail("10.0.0.1")).toBe(false);
    now += 1;
    expect(limiter.fail("10.0.0.1")).toBe(true);
    expect(limiter.fail("10.0.0.1")).toBe(false);
    // Never more than the burst, however long it stayed quiet.
    now += 3_600_000;
    expect([1, 2, 3, 4].map(() => limiter.fail("10.0.0.1"))).toEqual([true, true, true, false]);
  });

  it("remembers at most maxSources addresses, forgetting the least recently failing", () => {
    const limiter = new SourceLimiter({ burst: 1, perSecond: 0.001, maxSources: 100 }, () => 0);
    expect(limiter.fail("keep")).toBe(true);
    for (let i = 0; i < 99; i++) limiter.fail(`a${i}`);
    expect(limiter.fail("keep")).toBe(false);
    for (let i = 0; i < 10_000; i++) limiter.fail(`b${i}`);
    expect(limiter.size).toBe(100);
    // "keep" was pushed out: it starts with a full allowance again.
    expect(limiter.fail("keep")).toBe(true);
  });
});
