import type { HealthCheck } from "@nbfleet/shared";
import { describe, expect, it } from "vitest";
import { FAILED_KERNEL_RECHECK_MS, deepCheckDue } from "./deep-schedule.js";

const kernel = (status: HealthCheck["status"]): HealthCheck => ({
  name: "kernel",
  status,
  message: status,
  checkedAt: new Date(0).toISOString(),
});

describe("deepCheckDue", () => {
  const last = 1_000_000;

  it("waits the interval after a passing kernel check, and never when deep checks are off", () => {
    expect(deepCheckDue(last + 299_999, last, 300, kernel("pass"))).toBe(false);
    expect(deepCheckDue(last + 300_000, last, 300, kernel("pass"))).toBe(true);
    expect(deepCheckDue(last + 10_000_000, last, 0, kernel("fail"))).toBe(false);
  });

  it("tries a failed kernel check again after 30 s, or the interval when that is shorter", () => {
    expect(deepCheckDue(last + FAILED_KERNEL_RECHECK_MS - 1, last, 300, kernel("fail"))).toBe(false);
    expect(deepCheckDue(last + FAILED_KERNEL_RECHECK_MS, last, 300, kernel("fail"))).toBe(true);
    expect(deepCheckDue(last + 10_000, last, 10, kernel("fail"))).toBe(true);
    expect(deepCheckDue(last + 29_000, last, 300, kernel("warn"))).toBe(false);
  });

  it("is due at once when no deep check ever completed", () => {
    expect(deepCheckDue(Date.parse("2026-12-05T00:00:00Z"), 0, 300, undefined)).toBe(true);
  });
});
