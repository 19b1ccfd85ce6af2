/** The `auth` check: a request without credentials must be refused. */
import type { HealthCheck } from "@nbfleet/shared";
import { NETWORK_CHECK_TIMEOUT_MS, requestApi } from "./http.js";
import { checkResult, describeError } from "./result.js";
import type { CheckTarget } from "./target.js";

export async function checkAuth(
  target: CheckTarget,
  now = new Date(),
  timeoutMs = NETWORK_CHECK_TIMEOUT_MS,
): Promise<HealthCheck> {
  let status: number;
  let location: string | undefined;
  try {
    const res = await requestApi(target, { path: "api/status", timeoutMs });
    status = res.status;
    location = res.headers.location;
  } catch (error) {
    return checkResult("auth", "fail", `cannot ask /api/status: ${describeError(error)}`, now);
  }
  if (status === 401 || status === 403) {
    return checkResult("auth", "pass", `unauthenticated requests are refused (HTTP ${status})`, now, {
      status,
    });
  }
  if (status >= 300 && status < 400 && location?.includes("login")) {
    return checkResult("auth", "pass", "unauthenticated requests are sent to the login page", now, {
      status,
    });
  }
  if (status >= 200 && status < 300) {
    return checkResult("auth", "fail", "the notebook answers without authentication", now, { status });
  }
  return checkResult(
    "auth",
    "warn",
    `unexpected answer to an unauthenticated /api/status: HTTP ${status}`,
    now,
    {
      status,
    },
  );
}
