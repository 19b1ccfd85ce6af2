/**
 * `GET /v1/replicas` (viewer): the controller's replicas with their agent counts and last
 * heartbeat, oldest first. Live ones only, unless `all=true` (then also the dead ones the
 * janitor has not removed yet, with `alive: false`). With SQLite: this replica alone.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { ReplicaList } from "@nbfleet/shared";
import { Type } from "@sinclair/typebox";
import { Errors } from "../schemas.js";

const ReplicasQuery = Type.Object(
  {
    all: Type.Optional(
      Type.Boolean({ description: "also list dead replicas not yet removed (alive: false)" }),
    ),
  },
  { additionalProperties: false },
);

export const replicasPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { cluster } = app.nbfleet;

  app.get(
    "/v1/replicas",
    {
      config: { role: "viewer" },
      schema: {
        tags: ["replicas"],
        summary: "The controller's replicas: address, version, agents held, last heartbeat",
        querystring: ReplicasQuery,
        response: { 200: ReplicaList, ...Errors },
      },
    },
    async (request) => ({ items: await cluster.registry.list({ all: request.query.all ?? false }) }),
  );
};
