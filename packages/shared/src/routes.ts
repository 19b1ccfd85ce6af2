/**
 * The controller's URL paths that programs other than its API clients call: agents dial the
 * gateway, and guest bootstraps download the agent from the artifact path.
 */
export const AGENT_CONNECT_PATH = "/v1/agent/connect";
export const AGENT_ARTIFACT_PATH = "/v1/agent/artifact";
/** Agent artifacts as versions: `GET` lists them (viewer), `POST` publishes one (admin). */
export const AGENT_ARTIFACTS_PATH = "/v1/agent/artifacts";

/** Where an agent (or anyone: the signature, not the caller, vouches for it) downloads a version. */
export function agentArtifactFilePath(version: string): string {
  return `${AGENT_ARTIFACTS_PATH}/${encodeURIComponent(version)}/file`;
}
