/**
 * `GET /v1/agent/artifact`: the agent bundle guests download during bootstrap. Public: its
 * integrity comes from the sha256 carried in the bootstrap script, not from who may fetch it.
 */
import { createReadStream } from "node:fs";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { AGENT_ARTIFACT_PATH } from "@nbfleet/shared";
import { Type } from "@sinclair/typebox";
import type { ArtifactInfo } from "../../artifact-info.js";

export const agentArtifactPlugin: FastifyPluginAsyncTypebox<{ artifact: ArtifactInfo }> = async (
  app,
  { artifact },
) => {
  app.get(
    AGENT_ARTIFACT_PATH,
    {
      config: { role: "public" },
      schema: {
        tags: ["agent"],
        summary: "The agent artifact (tar.gz) guests install",
        produces: ["application/gzip"],
      },
    },
    async (_request, reply) =>
      reply
        .header("content-type", "application/gzip")
        .header("content-length", artifact.bytes)
        .header("x-nbfleet-sha256", artifact.sha256)
        .header("cache-control", "no-cache")
        .send(createReadStream(artifact.file)),
  );
  app.get(
    `${AGENT_ARTIFACT_PATH}/info`,
    {
      config: { role: "public" },
      schema: {
        tags: ["agent"],
        summary: "The artifact's version, size and sha256",
        response: {
          200: Type.Object({ version: Type.String(), sha256: Type.String(), bytes: Type.Integer() }),
        },
      },
    },
    async () => ({ version: artifact.version, sha256: artifact.sha256, bytes: artifact.bytes }),
  );
};
