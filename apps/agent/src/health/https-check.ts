/** The `https` check: `GET <base>api` answers over TLS with the server's version. */
import type { HealthCheck } from "@nbfleet/shared";
import { NETWORK_CHECK_TIMEOUT_MS, probeApi } from "./http.js";
import { checkResult } from "./result.js";
import type { CheckTarget } from "./target.js";

export async function checkHttps(
  target: CheckTarget,
  now = new Date(),
  timeoutMs = NETWORK_CHECK_TIMEOUT_MS,
): Promise<HealthCheck> {
  const started = performance.now();
  const probe = await probeApi(target, timeoutMs);
  const ms = Math.round(performance.now() - started);
  if (!probe.ok) return checkResult("https", "fail", probe.error, now, { ms });
  return checkResult("https", "pass", `notebook ${probe.version} answers over HTTPS`, now, {
    version: probe.version,
    ms,
  });
}
