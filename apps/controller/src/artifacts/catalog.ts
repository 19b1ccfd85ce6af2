/**
 * The agent artifacts the cluster keeps, as versions (records and bytes in the database every
 * replica shares), each signed with the cluster's release key. What the operations engine, the
 * API, the gateway and the providers need from the store; `artifacts/store.ts` implements it
 * (and gives the bytes: `ArtifactStore.localFile(record)`).
 */
export interface ArtifactRecord {
  version: string;
  /** Lower-case hex SHA-256 of the tarball. */
  sha256: string;
  bytes: number;
  /** Base64 Ed25519 signature of `artifactSigningMessage(version, sha256)` (shared). */
  signature: string;
  publishedAt: string;
}

export interface ArtifactCatalog {
  /** Every stored version, newest first (semver order, `compareVersions`). */
  list(): Promise<ArtifactRecord[]>;
  get(version: string): Promise<ArtifactRecord | null>;
  /** The newest stored version: agents older than it are "outdated". */
  newest(): Promise<ArtifactRecord | null>;
  /** The release public key (SPKI PEM) guests verify signatures with. */
  releasePublicKeyPem(): string;
}
