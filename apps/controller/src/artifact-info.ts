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
