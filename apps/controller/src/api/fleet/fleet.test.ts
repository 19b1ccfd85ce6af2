import { startTestController } from "@nbfleet/testkit/controller";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { afterEach, describe, expect, it } from "vitest";
import { neverConnectedStatus } from "../../store/vms-repo.js";

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

describe.each(STORE_DIALECTS)("GET /v1/fleet/summary (%s)", (dialect) => {
  it("counts every machine of the fleet per health, beyond one page", async () => {
    const controller = await startTestController({ settings: await freshStoreLocation(dialect) });
    closers.push(controller.close);
    const { app } = controller;
    const vms = await seedVms(app, { count: 120 });
    const now = new Date().toISOString();
    vms.forEach((vm, i) => {
      const health = i % 10 === 0 ? "unhealthy" : i % 10 === 1 ? "degraded" : i < 100 ? "healthy" : "unknown";
      app.nbfleet.store.writer.putStatus({ ...neverConnectedStatus(vm.name, now), health });
    });
    await app.nbfleet.store.writer.flush();

    const viewer = await app.inject({
      method: "POST",
      url: "/v1/tokens",
      headers: { authorization: `Bearer ${controller.adminToken}` },
      payload: { name: "v", role: "viewer" },
    });
    const res = await app.inject({
      method: "GET",
      url: "/v1/fleet/summary",
      headers: { authorization: `Bearer ${viewer.json().token}` },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      total: 120,
      byHealth: { healthy: 80, degraded: 12, unhealthy: 12, unknown: 16 },
    });
  });

  it("refuses a request without a token", async () => {
    const controller = await startTestController({ settings: await freshStoreLocation(dialect) });
    closers.push(controller.close);
    const res = await controller.app.inject({ method: "GET", url: "/v1/fleet/summary" });
    expect(res.statusCode).toBe(401);
  });
});
