/**
 * The agent artifact catalog: `GET /v1/agent/artifacts` (viewer) lists the stored versions with
 * the release public key; `POST /v1/agent/artifacts` (admin) publishes one (the tarball as the
 * body, `Content-Type: application/gzip`), checked and signed before it is stored;
 * `GET /v1/agent/artifacts/{version}/file` (public: the signature vouches, not the caller)
 * sends one to a guest from this replica's local copy (the bytes live in the database), kept in
 * memory while it is being served.
 */
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { ARTIFACT_MAX_BYTES } from "@nbfleet/scripts";
import { AGENT_ARTIFACTS_PATH } from "@nbfleet/shared";
import { Type } from "@sinclair/typebox";
import { countAgentsByVersion } from "../../artifacts/agent-versions.js";
import type { ArtifactRecord } from "../../artifacts/catalog.js";
import { ServedBytes } from "../../artifacts/served-bytes.js";
import { NbfError } from "../../errors.js";
import { Errors } from "../schemas.js";
import { AgentArtifactList, type AgentArtifactView, ArtifactVersion, PublishedArtifact } from "./schemas.js";

const GZIP_TYPES = ["application/gzip", "application/x-gzip"];

export const agentArtifactCatalogPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { artifacts, store, bus } = app.nbfleet;
  const served = new ServedBytes();

  // Uploads reach the handler as the raw stream, whatever their type: the handler says which
  // type it wants (fastify's own refusal would say "send JSON").
  app.addContentTypeParser("*", (_request, payload, done) => done(null, payload));

  const view = async (records: ArtifactRecord[]): Promise<AgentArtifactView[]> => {
    const counts = await countAgentsByVersion(store);
    return records.map((record, i) => ({
      version: record.version,
      bytes: record.bytes,
      sha256: record.sha256,
      signature: record.signature,
      publishedAt: record.publishedAt,
      agents: counts.get(record.version) ?? 0,
      newest: i === 0,
    }));
  };

  app.get(
    AGENT_ARTIFACTS_PATH,
    {
      config: { role: "viewer" },
      schema: {
        tags: ["agent"],
        summary: "The stored agent artifacts (newest first) and the release public key",
        response: { 200: AgentArtifactList, ...Errors },
      },
    },
    async () => ({
      items: await view(await artifacts.list()),
      releasePublicKey: artifacts.releasePublicKeyPem(),
    }),
  );

  app.post(
    AGENT_ARTIFACTS_PATH,
    {
      config: { role: "admin" },
      bodyLimit: ARTIFACT_MAX_BYTES,
      // The body is the tarball as a stream, checked by the handler (inspectArtifact); the
      // schema below documents it and is not applied. The route has no params or query.
      validatorCompiler: () => () => true,
      schema: {
        tags: ["agent"],
        summary: "Publish an agent artifact (the tar.gz as the body, Content-Type: application/gzip)",
        description: `Checked before it is stored: a gzip'd tar of at most ${ARTIFACT_MAX_BYTES} bytes with manifest.json (name nbfleet-agent, a version) and nbfleet-agent.mjs, relative paths only, no links. Signed with the release key. The same version with the same bytes again: 200; with other bytes: 409.`,
        consumes: GZIP_TYPES,
        body: Type.Unsafe<unknown>({
          type: "string",
          format: "binary",
          description: "the artifact (tar.gz)",
        }),
        response: { 200: PublishedArtifact, 201: PublishedArtifact, ...Errors },
      },
    },
    async (request, reply) => {
      const type = (request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
      if (!GZIP_TYPES.includes(type)) {
        throw new NbfError("NBF_ARTIFACT_INVALID", {
          problem: `send the tarball as the body with Content-Type: application/gzip (got ${type || "no content type"})`,
        });
      }
      const declared = Number(request.headers["content-length"]);
      if (Number.isFinite(declared) && declared > ARTIFACT_MAX_BYTES) {
        throw new NbfError("NBF_BODY_TOO_LARGE", { limit: ARTIFACT_MAX_BYTES });
      }
      const body: unknown = request.body;
      if (!(body instanceof Readable)) {
        throw new NbfError("NBF_ARTIFACT_INVALID", { problem: "the body is empty" });
      }
      const { record, created } = await artifacts.publish(body, ARTIFACT_MAX_BYTES);
      if (created) {
        bus.emit({
          vmName: null,
          kind: "agent.artifact.published",
          message: `agent artifact ${record.version} published by ${request.principal?.id} (${record.bytes} bytes, sha256 ${record.sha256})`,
          data: { version: record.version, sha256: record.sha256, bytes: record.bytes },
        });
      }
      const item = (await view(await artifacts.list())).find((i) => i.version === record.version);
      reply.status(created ? 201 : 200);
      return { ...(item ?? { ...(await view([record]))[0]!, newest: false }), created };
    },
  );

  app.get(
    `${AGENT_ARTIFACTS_PATH}/:version/file`,
    {
      config: { role: "public" },
      schema: {
        tags: ["agent"],
        summary: "One stored agent artifact (tar.gz); guests check its sha256 and signature",
        params: Type.Object({ version: ArtifactVersion }),
        produces: ["application/gzip"],
      },
    },
    async (request, reply) => {
      const record = await artifacts.require(request.params.version);
      const file = await artifacts.localFile(record);
      const content = await served.get(record.sha256, record.bytes, file);
      return reply
        .header("content-type", "application/gzip")
        .header("content-length", record.bytes)
        .header("x-nbfleet-sha256", record.sha256)
        .header("x-nbfleet-signature", record.signature)
        .header("x-nbfleet-version", record.version)
        .header("cache-control", "no-cache")
        .send(content ?? createReadStream(file));
    },
  );
};
