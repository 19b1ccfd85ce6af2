/**
 * `GET /v1/fleet/summary` (viewer): how many machines the fleet has, per health (the console's
 * counts at the top of the fleet page). Health changes are stored at once, so the counts are
 * as fresh as the store; one grouped query, however large the fleet.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { FleetSummary, OVERALL_HEALTHS } from "@nbfleet/shared";
import { Errors } from "../schemas.js";

export const fleetPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { store } = app.nbfleet;

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
};
