import { describe, expect, it } from "vitest";
import { SignInThrottle } from "./sign-in-throttle.js";

describe("sign-in throttle", () => {
  it("refuses after the limit until the window ends, per address, forgetting the oldest beyond its size", () => {
    let now = 1_000_000;
    const throttle = new SignInThrottle({ maxFailures: 3, windowMs: 10_000, maxAddresses: 2 }, () => now);
    for (let i = 0; i < 3; i++) {
      expect(throttle.retryAfterSec("a")).toBe(0);
      throttle.recordFailure("a");
    }
    expect(throttle.retryAfterSec("a")).toBe(10);
    now += 4_500;
    expect(throttle.retryAfterSec("a")).toBe(6);
    expect(throttle.retryAfterSec("b")).toBe(0);
    now += 5_500;
    expect(throttle.retryAfterSec("a")).toBe(0);

    for (let i = 0; i < 3; i++) throttle.recordFailure("a");
    throttle.recordFailure("b");
    throttle.recordFailure("c");
    // Three addresses, room for two: "a" (the oldest) is forgotten.
    expect(throttle.retryAfterSec("a")).toBe(0);
  });
});
