/**
 * An ACME failure shown where people look for certificate trouble: the `tls` check turns warn
 * (a fail it already had stays fail) and says what the CA answered and when the agent asks
 * again, while the notebook keeps serving its current certificate.
 */
import type { HealthCheck } from "@nbfleet/shared";
import type { RenewalFailure } from "./renewer.js";

export function withAcmeFailure(checks: HealthCheck[], failure: RenewalFailure | null): HealthCheck[] {
  if (!failure) return checks;
  return checks.map((check) => {
    if (check.name !== "tls") return check;
    const note = `ACME issuance failed ${failure.failures} time${failure.failures === 1 ? "" : "s"} (${failure.message}); next attempt at ${failure.nextAttemptAt}`;
    return {
      ...check,
      status: check.status === "fail" ? "fail" : "warn",
      message: check.status === "pass" ? note : `${check.message}; ${note}`,
      data: {
        ...check.data,
        acme: {
          code: failure.code,
          ...(failure.problemType ? { problemType: failure.problemType } : {}),
          failures: failure.failures,
          nextAttemptAt: failure.nextAttemptAt,
        },
      },
    };
  });
}
