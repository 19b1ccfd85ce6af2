/** The agent artifact catalog as the API shows it (GET|POST /v1/agent/artifacts). */
import { ARTIFACT_VERSION_PATTERN } from "@nbfleet/shared/artifact-signature";
import { type Static, Type } from "@sinclair/typebox";

export const ArtifactVersion = Type.String({ pattern: ARTIFACT_VERSION_PATTERN, maxLength: 64 });

export const AgentArtifactView = Type.Object({
  version: ArtifactVersion,
  bytes: Type.Integer(),
  sha256: Type.String({ description: "lower-case hex SHA-256 of the tarball" }),
  signature: Type.String({
    description:
      "base64 Ed25519 signature by the release key of the version and sha256 (see releasePublicKey)",
  }),
  publishedAt: Type.String({ format: "date-time" }),
  agents: Type.Integer({ description: "machines whose agent last reported this version" }),
  newest: Type.Boolean({ description: "the newest stored version: agents on older ones are outdated" }),
});
export type AgentArtifactView = Static<typeof AgentArtifactView>;

export const AgentArtifactList = Type.Object({
  items: Type.Array(AgentArtifactView, { description: "newest first (semver order)" }),
  releasePublicKey: Type.String({
    description: "the release public key (Ed25519, SPKI PEM) guests verify with",
  }),
});
export type AgentArtifactList = Static<typeof AgentArtifactList>;

export const PublishedArtifact = Type.Composite([
  AgentArtifactView,
  Type.Object({
    created: Type.Boolean({ description: "false: this version was already stored with these bytes" }),
  }),
]);
export type PublishedArtifact = Static<typeof PublishedArtifact>;
