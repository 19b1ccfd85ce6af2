import { runCli } from "@nbfleet/testkit/cli";
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

describe("POST /v1/fleet/teardown and nbfleet fleet teardown (a provider that shares nothing)", () => {
  it("refuses: the machines share nothing (the simulated provider, like the local one); the CLI asks for --yes first and exits with the API's reason", async () => {
    const controller = await startTestController();
    closers.push(controller.close);
    const res = await controller.app.inject({
      method: "POST",
      url: "/v1/fleet/teardown",
      headers: { authorization: `Bearer ${controller.adminToken}` },
    });
    expect(res.statusCode).toBe(409);
    expect(res.json().error).toMatchObject({
      code: "NBF_FLEET_NO_TEARDOWN",
      message: "provider sim keeps nothing shared between machines: there is nothing to tear down",
    });

    const unconfirmed = await runCli(controller, "fleet", "teardown");
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toMatch(/cannot be undone; pass --yes/);
    const confirmed = await runCli(controller, "fleet", "teardown", "--yes");
    expect(confirmed.code).toBe(2); // a 409, like every refusal of bad input or state
    expect(confirmed.stderr).toMatch(/nothing to tear down \[NBF_FLEET_NO_TEARDOWN\]/);
  });
});
