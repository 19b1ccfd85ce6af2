/** Builds HealthCheck values and turns thrown things into one-line reasons. */
import type { CheckName, CheckStatus, HealthCheck } from "@nbfleet/shared";

export function checkResult(
  name: CheckName,
  status: CheckStatus,
  message: string,
  now: Date,
  data?: Record<string, unknown>,
): HealthCheck {
  const check: HealthCheck = { name, status, message, checkedAt: now.toISOString() };
  if (data !== undefined) check.data = data;
  return check;
}

export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
