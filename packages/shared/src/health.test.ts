import { describe, expect, it } from "vitest";
import { type HealthCheck, foldHealth } from "./health.js";

const check = (name: HealthCheck["name"], status: HealthCheck["status"]): HealthCheck => ({
  name,
  status,
  message: `${name} ${status}`,
  checkedAt: new Date(0).toISOString(),
});

describe("foldHealth", () => {
  it("is healthy when every check passes and the notebook runs", () => {
    const report = foldHealth([check("process", "pass"), check("https", "pass")], "running");
    expect(report.status).toBe("healthy");
    expect(report.reasons).toEqual([]);
  });
  it("is degraded on a warning and names it", () => {
    const report = foldHealth([check("process", "pass"), check("tls", "warn")], "running");
    expect(report.status).toBe("degraded");
    expect(report.reasons).toEqual(["tls: tls warn"]);
  });
  it("is unhealthy on a failure even with warnings", () => {
    expect(foldHealth([check("tls", "warn"), check("https", "fail")], "running").status).toBe("unhealthy");
  });
  it("is unhealthy when the notebook is not running", () => {
    const report = foldHealth([], "backoff");
    expect(report.status).toBe("unhealthy");
    expect(report.reasons).toEqual(["notebook is backoff"]);
  });
});
