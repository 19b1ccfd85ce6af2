import type { HealthCheck } from "@nbfleet/shared";
import { describe, expect, it } from "vitest";
import { withAcmeFailure } from "./tls-check-note.js";

const at = "2026-12-04T12:00:00.000Z";
const checks = (status: HealthCheck["status"], message: string): HealthCheck[] => [
  { name: "process", status: "pass", message: "running", checkedAt: at },
  { name: "tls", status, message, checkedAt: at, data: { daysLeft: 50 } },
];
const failure = {
  at,
  code: "NBF_ACME_FAILED",
  message: "ACME new order failed: urn:ietf:params:acme:error:rateLimited: too many",
  problemType: "urn:ietf:params:acme:error:rateLimited",
  failures: 2,
  nextAttemptAt: "2026-12-04T13:00:00.000Z",
};

describe("withAcmeFailure", () => {
  it("leaves the checks alone without a failure", () => {
    const before = checks("pass", "certificate valid for 50 more days");
    expect(withAcmeFailure(before, null)).toBe(before);
  });

  it("turns a passing tls check to warn with ACME's message and the next attempt", () => {
    const [process, tls] = withAcmeFailure(checks("pass", "certificate valid for 50 more days"), failure);
    expect(process?.status).toBe("pass");
    expect(tls).toMatchObject({
      status: "warn",
      message: `ACME issuance failed 2 times (${failure.message}); next attempt at ${failure.nextAttemptAt}`,
      data: {
        daysLeft: 50,
        acme: {
          code: "NBF_ACME_FAILED",
          problemType: failure.problemType,
          failures: 2,
          nextAttemptAt: failure.nextAttemptAt,
        },
      },
    });
  });

  it("keeps a failing tls check failing and its own message first", () => {
    const [, tls] = withAcmeFailure(checks("fail", "the certificate expired on x"), {
      ...failure,
      failures: 1,
    });
    expect(tls?.status).toBe("fail");
    expect(tls?.message).toMatch(/^the certificate expired on x; ACME issuance failed 1 time \(/);
  });
});
