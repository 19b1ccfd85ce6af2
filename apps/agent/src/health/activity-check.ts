/** The `activity` check: kernels, connections and the latest activity, read with the agent token. */
import type { HealthCheck } from "@nbfleet/shared";
import { NETWORK_CHECK_TIMEOUT_MS, requestApi } from "./http.js";
import { checkResult, describeError } from "./result.js";
import type { CheckTarget } from "./target.js";

interface ServerStatus {
  connections?: unknown;
  kernels?: unknown;
  last_activity?: unknown;
  started?: unknown;
}

export async function checkActivity(
  target: CheckTarget,
  now = new Date(),
  timeoutMs = NETWORK_CHECK_TIMEOUT_MS,
): Promise<HealthCheck> {
  let status: ServerStatus;
  let kernels: { last_activity?: unknown }[];
  try {
    const [statusRes, kernelsRes] = await Promise.all([
      requestApi(target, { path: "api/status", token: target.token, timeoutMs }),
      requestApi(target, { path: "api/kernels", token: target.token, timeoutMs }),
    ]);
    for (const [path, res] of [
      ["/api/status", statusRes],
      ["/api/kernels", kernelsRes],
    ] as const) {
      if (res.status === 401 || res.status === 403) {
        return checkResult(
          "activity",
          "warn",
          `the agent token was refused by ${path} (HTTP ${res.status})`,
          now,
        );
      }
      if (res.status !== 200) {
        return checkResult("activity", "warn", `${path} answered HTTP ${res.status}`, now);
      }
    }
    if (typeof statusRes.body !== "object" || statusRes.body === null || !Array.isArray(kernelsRes.body)) {
      return checkResult("activity", "warn", "/api/status or /api/kernels answered an unexpected body", now);
    }
    status = statusRes.body as ServerStatus;
    kernels = kernelsRes.body as { last_activity?: unknown }[];
  } catch (error) {
    return checkResult("activity", "warn", `cannot read activity: ${describeError(error)}`, now);
  }

  const lastActivity = latest([status.last_activity, ...kernels.map((k) => k.last_activity)]);
  const connections = typeof status.connections === "number" ? status.connections : null;
  const data = {
    kernels: kernels.length,
    connections,
    lastActivity,
    started: typeof status.started === "string" ? status.started : null,
  };
  const message = `${kernels.length} kernel(s), ${connections ?? "?"} connection(s), last activity ${lastActivity ?? "unknown"}`;
  return checkResult("activity", "pass", message, now, data);
}

function latest(stamps: unknown[]): string | null {
  let best: Date | null = null;
  for (const stamp of stamps) {
    if (typeof stamp !== "string") continue;
    const date = new Date(stamp);
    if (!Number.isNaN(date.getTime()) && (best === null || date > best)) best = date;
  }
  return best === null ? null : best.toISOString();
}
