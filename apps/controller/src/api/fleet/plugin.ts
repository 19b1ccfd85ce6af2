/**
 * `GET /v1/fleet/summary` (viewer): how many machines the fleet has, per health (the console's
 * counts at the top of the fleet page). Health changes are stored at once, so the counts are
 * as fresh as the store; one grouped query, however large the fleet.
 * `POST /v1/fleet/teardown` (admin): once no machine is left, deletes what the provider's
 * machines shared (Azure: VNet, NSG, and the resource group when nothing else is in it).
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { FleetSummary, FleetTeardownReport, OVERALL_HEALTHS } from "@nbfleet/shared";
import { NbfError } from "../../errors.js";
import { Errors } from "../schemas.js";

export const fleetPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { store, provider } = app.nbfleet;

  app.get(
    "/v1/fleet/summary",
    {
      config: { role: "viewer" },
      schema: {
        tags: ["vms"],
        summary: "How many machines the fleet has, per health",
        response: { 200: FleetSummary, ...Errors },
      },
    },
    async () => {
      const counted = await store.vms.countByHealth();
      const byHealth = { healthy: 0, degraded: 0, unhealthy: 0, unknown: 0 };
      for (const [health, count] of Object.entries(counted)) {
        const known = (OVERALL_HEALTHS as readonly string[]).includes(health) ? health : "unknown";
        byHealth[known as keyof typeof byHealth] += count;
      }
      const total = Object.values(byHealth).reduce((sum, n) => sum + n, 0);
      return { total, byHealth };
    },
  );

  app.post(
    "/v1/fleet/teardown",
    {
      config: { role: "admin" },
      schema: {
        tags: ["vms"],
        summary: "Delete what the fleet's machines shared, once none is left",
        response: { 200: FleetTeardownReport, ...Errors },
      },
    },
    async () => {
      if (!provider.teardownFleet) throw new NbfError("NBF_FLEET_NO_TEARDOWN", { provider: provider.name });
      // A machine created meanwhile gets its network again on demand (the provider's ensure).
      const [first] = await store.vms.list({ limit: 1 });
      if (first) {
        const total = Object.values(await store.vms.countByHealth()).reduce((sum, n) => sum + n, 0);
        throw new NbfError("NBF_FLEET_NOT_EMPTY", { count: Math.max(1, total), example: first.name });
      }
      return { provider: provider.name, ...(await provider.teardownFleet()) };
    },
  );
};
