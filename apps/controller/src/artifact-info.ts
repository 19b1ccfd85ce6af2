import { isArtifactVersion } from "@nbfleet/shared/artifact-signature";

/**
 * The agent artifact this controller serves (see api/agent-artifact): the providers put its
 * URL and checksum into every guest's bootstrap, the API streams the file.
 */
export interface ArtifactInfo {
  file: string;
  sha256: string;
  bytes: number;
  version: string;
}

/**
 * What a guest's bootstrap carries about the artifact's version and the release key: the
 * version names its install dir (`versions/<version>`) and the agent later verifies upgrade
 * artifacts with the key. A version that is no artifact version is left out (named by sha256).
 */
export function artifactVersionSettings(
  artifact: ArtifactInfo,
  releasePublicKeyPem: string | undefined,
): { artifactVersion?: string; releasePublicKeyPem?: string } {
  return {
    ...(isArtifactVersion(artifact.version) ? { artifactVersion: artifact.version } : {}),
    ...(releasePublicKeyPem ? { releasePublicKeyPem } : {}),
  };
}
