/**
 * `GET|PUT /v1/policies/idle`: the idle shutdown policy. Changing it is admin-only and
 * recorded as a `policy.updated` event naming the token that did it.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { IdlePolicyBody, IdlePolicyView } from "@nbfleet/shared/operations";
import { Errors } from "../schemas.js";

export const policiesPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { idlePolicy } = app.nbfleet;

  app.get(
    "/v1/policies/idle",
    {
      config: { role: "viewer" },
      schema: {
        tags: ["policies"],
        summary: "The idle shutdown policy",
        response: { 200: IdlePolicyView, ...Errors },
      },
    },
    async () => idlePolicy.get(),
  );

  app.put(
    "/v1/policies/idle",
    {
      config: { role: "admin" },
      schema: {
        tags: ["policies"],
        summary: "Set the idle shutdown policy (stop the notebook or deallocate the VM after N idle minutes)",
        body: IdlePolicyBody,
        response: { 200: IdlePolicyView, ...Errors },
      },
    },
    async (request) => {
      await idlePolicy.set(request.body, request.principal?.name ?? null);
      return idlePolicy.get();
    },
  );
};
