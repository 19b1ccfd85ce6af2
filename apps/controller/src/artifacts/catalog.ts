/**
 * The agent artifacts this controller keeps, as versions (`<data-dir>/artifacts/<version>/`),
 * each signed with the controller's release key. What the operations engine, the API, the
 * gateway and the providers need from the store; `artifacts/store.ts` implements it.
 */
export interface ArtifactRecord {
  version: string;
  /** Lower-case hex SHA-256 of the tarball. */
  sha256: string;
  bytes: number;
  /** Base64 Ed25519 signature of `artifactSigningMessage(version, sha256)` (shared). */
  signature: string;
  publishedAt: string;
  /** The tarball on the controller's disk. */
  file: string;
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
