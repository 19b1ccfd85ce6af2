/**
 * `GET|PUT /v1/policies/idle`: the idle shutdown policy. Changing it is admin-only and
 * recorded as a `policy.updated` event naming the token that did it.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "@sinclair/typebox";
import { Errors } from "../schemas.js";

const IdleRule = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    labels: Type.Optional(
      Type.String({ minLength: 1, maxLength: 1024, description: "label expression; absent = every VM" }),
    ),
    idleMinutes: Type.Number({ minimum: 0.01, maximum: 30 * 24 * 60 }),
    action: Type.Union([Type.Literal("notebook.stop"), Type.Literal("vm.stop")], {
      description: "notebook.stop stops the notebook server; vm.stop deallocates the machine",
    }),
  },
  { additionalProperties: false },
);

const IdlePolicyBody = Type.Object(
  {
    enabled: Type.Boolean(),
    rules: Type.Array(IdleRule, {
      maxItems: 100,
      description: "the first rule whose labels match a VM applies",
    }),
  },
  { additionalProperties: false },
);

const IdlePolicyView = Type.Composite([
  IdlePolicyBody,
  Type.Object({
    updatedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
    updatedBy: Type.Union([Type.String(), Type.Null()]),
  }),
]);

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
